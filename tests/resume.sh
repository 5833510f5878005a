#!/usr/bin/env bash
# Runs that survive (issue 6), through the binary:
#  - SIGINT at an arbitrary iteration: exit 130, a loadable checkpoint, and a
#    resume whose metrics and final parameters are bit-identical to an
#    uninterrupted run (sps and wall-time columns excepted);
#  - SIGTERM: exit 143;
#  - each class of bad checkpoint refused with its message;
#  - an injected NaN stops the run naming quantity, agent and iteration,
#    keeping a loadable last good checkpoint.
#   resume.sh BLPO_GPU TEST_CKPT_COMPARE ALGO NUM_SEEDS [ITERATIONS]
# ITERATIONS (default 150) only needs to leave the interrupt room to land
# mid-run, past a few checkpoints and the NaN test's iteration 9.
# BLPO_RESUME_DEVICE=cuda runs every step on the CUDA backend instead of cpu.
set -u
bin="$1" cmp="$2" algo="$3" seeds="$4" iters="${5:-150}"
dev="${BLPO_RESUME_DEVICE:-cpu}"
# shellcheck source=tests/check_lib.sh
. "$(dirname "$0")/check_lib.sh"

args=(--config cartpole.yaml --device "$dev" --quiet --set "algo.name=$algo" --set "run.num_seeds=$seeds"
      --set env.num_envs=32 --set env.num_steps=32 --set algo.num_minibatches=4
      --set run.total_steps=$((32 * 32 * iters)) --set run.checkpoint_every=7 --set run.seed=3)
learning_cols() { cut -d, -f1-31 "$1"; } # all but sps and wall_time_s

"$bin" "${args[@]}" --out "$tmp/a" >/dev/null 2>"$tmp/a.err"
check "uninterrupted run completes" "[ $? -eq 0 ]"

# interrupt after a few iterations, wherever the run happens to be
"$bin" "${args[@]}" --out "$tmp/b" >/dev/null 2>"$tmp/b.err" &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$tmp/b/metrics.csv" ] && [ "$(wc -l < "$tmp/b/metrics.csv")" -gt $((3 * seeds + 1)) ] && break
  sleep 0.05
done
kill -INT $pid
wait $pid
rc=$?
check "SIGINT exits 130 (got $rc)" "[ $rc -eq 130 ]"
check "SIGINT says where the checkpoint is and how to resume" "grep -q -- '--resume $tmp/b' '$tmp/b.err'"
rows_at_stop=$(($(wc -l < "$tmp/b/metrics.csv") - 1))
check "stopped mid-run ($rows_at_stop of $((iters * seeds)) rows)" "[ $rows_at_stop -lt $((iters * seeds)) ]"
"$bin" eval "$tmp/b" --episodes 3 --deterministic --device "$dev" >"$tmp/eval.out" 2>&1
check "the interrupted run's checkpoint loads (eval)" "[ $? -eq 0 ] && grep -q 'mean' '$tmp/eval.out'"
"$bin" --resume "$tmp/b" --device "$dev" --quiet >/dev/null 2>"$tmp/b2.err"
check "resume completes" "[ $? -eq 0 ]"
check "resumed metrics identical to the uninterrupted run" \
  "cmp -s <(learning_cols '$tmp/a/metrics.csv') <(learning_cols '$tmp/b/metrics.csv')"
"$cmp" "$tmp/a/checkpoint.safetensors" "$tmp/b/checkpoint.safetensors" >"$tmp/cmp.out"
rc=$? # taken at once: the $(cat) below would reset $?
check "final parameters, optimiser and env states bit-identical ($(cat "$tmp/cmp.out"))" "[ $rc -eq 0 ]"

# SIGTERM
"$bin" "${args[@]}" --out "$tmp/t" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -f "$tmp/t/metrics.csv" ] && [ "$(wc -l < "$tmp/t/metrics.csv")" -gt 2 ] && break; sleep 0.05; done
kill -TERM $pid
wait $pid
check "SIGTERM exits 143" "[ $? -eq 143 ]"

# bad checkpoints: each refused with exit 2 and its own message
ck="$tmp/a/checkpoint.safetensors"
mk() { rm -rf "${tmp:?}/$1"; cp -r "$tmp/a" "$tmp/$1"; }
refused() { # NAME PATTERN
  "$bin" --resume "$tmp/$1" --device "$dev" --quiet >/dev/null 2>"$tmp/$1.err"
  local rc=$?
  check "$1 refused (exit $rc): $(head -c 160 "$tmp/$1.err")" "[ $rc -eq 2 ] && grep -Eq -- '$2' '$tmp/$1.err'"
}
mk trunc; head -c $(($(stat -c %s "$ck") / 2)) "$ck" > "$tmp/trunc/checkpoint.safetensors"
refused trunc "truncated or corrupt"
mk corrupt; python3 - "$tmp/corrupt/checkpoint.safetensors" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
b[12] = ord('#')  # inside the JSON header
open(p, 'wb').write(b)
PY
refused corrupt "truncated or corrupt"
# set_meta FILE KEY VALUE: rewrites one metadata entry of a checkpoint
set_meta() {
  python3 - "$@" <<'PY'
import json, struct, sys
p, key, value = sys.argv[1:4]; b = open(p, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
h['__metadata__'][key] = value
s = json.dumps(h).encode(); s += b' ' * ((8 - len(s) % 8) % 8)
open(p, 'wb').write(struct.pack('<Q', len(s)) + s + b[8 + n:])
PY
}
mk version; set_meta "$tmp/version/checkpoint.safetensors" format_version 99
refused version "incompatible checkpoint format version 99"
mk other; sed -i 's/name: ppo$/name: XX/; s/name: blpo$/name: ppo/; s/name: XX$/name: blpo/' "$tmp/other/config.yaml"
refused other "another config: algo.name"
mk shape; sed -i 's/num_envs: 32/num_envs: 16/' "$tmp/shape/config.yaml"
refused shape "another config"
# a mismatch on a checkpoint from another build names both builds
mk build; sed -i 's/num_envs: 32/num_envs: 16/' "$tmp/build/config.yaml"
set_meta "$tmp/build/checkpoint.safetensors" blpo_commit abc1234
refused build "another build of blpo-gpu \(commit abc1234; this is "
mk missing; rm "$tmp/missing/checkpoint.safetensors"
refused missing "no checkpoint at"

# an injected NaN: stops with the quantity, agent and iteration named
"$bin" "${args[@]}" --out "$tmp/nan" --set run.debug_nan_iteration=9 >/dev/null 2>"$tmp/nan.err"
rc=$?
check "NaN stops the run with exit 3 (got $rc)" "[ $rc -eq 3 ]"
check "the message names quantity, agent and iteration: $(grep -m1 fault "$tmp/nan.err")" \
  "grep -Eq 'numerical fault: [a-z_]+.* is (nan|-nan|inf).* agent [0-9]+.* iteration 10' '$tmp/nan.err'"
check "it points at the last good checkpoint (iteration 7)" "grep -q 'iteration 7)' '$tmp/nan.err'"
"$bin" eval "$tmp/nan" --episodes 2 --device "$dev" >/dev/null 2>&1
check "the last good checkpoint loads" "[ $? -eq 0 ]"

check_summary
