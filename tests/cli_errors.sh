#!/usr/bin/env bash
# Each class of bad input to the blpo-gpu binary: exit code 2, a
# FILE:LINE:COL message naming the problem, and no run directory left behind.
#   cli_errors.sh PATH/TO/blpo-gpu
set -u
bin="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0

# expect NAME EXPECTED_STDERR_REGEX -- ARGS...
expect() {
  local name="$1" pattern="$2"
  shift 3
  local out="$tmp/out" err="$tmp/err"
  "$bin" "$@" --set "run.out_dir=$tmp/runs" >"$out" 2>"$err"
  local rc=$?
  local ok=1
  [ "$rc" -eq 2 ] || { echo "FAIL $name: exit code $rc, expected 2"; ok=0; }
  grep -Eq -- "$pattern" "$err" || { echo "FAIL $name: stderr does not match /$pattern/:"; sed 's/^/    /' "$err"; ok=0; }
  if [ -e "$tmp/runs" ] && [ -n "$(ls -A "$tmp/runs" 2>/dev/null)" ]; then
    echo "FAIL $name: a run directory was left behind"; ok=0
  fi
  if [ $ok -eq 1 ]; then passes=$((passes + 1)); echo "ok   $name: $(head -n 1 "$err")"; else fails=$((fails + 1)); fi
  rm -rf "$tmp/runs"
}

cfg() { printf '%s\n' "$2" > "$tmp/$1"; echo "$tmp/$1"; }

f=$(cfg malformed.yaml $'env:\n  id: CartPole-v1\n  num_envs: [1, 2\n')
expect malformed_yaml "malformed.yaml:[0-9]+:[0-9]+: " -- --config "$f"

f=$(cfg unknown.yaml $'env:\n  id: CartPole-v1\n  num_env: 8\n')
expect unknown_key "unknown.yaml:3:3: .*num_env.*did you mean 'env.num_envs'" -- --config "$f"

f=$(cfg type.yaml $'env:\n  num_envs: many\n')
expect wrong_type "type.yaml:2:13: .*env.num_envs.*integer" -- --config "$f"

f=$(cfg range.yaml $'algo:\n  actor_lr: -0.001\n')
expect out_of_range "range.yaml:2:13: .*algo.actor_lr" -- --config "$f"

f=$(cfg enum.yaml $'algo:\n  name: sac\n')
expect unknown_enum "enum.yaml:2:9: .*(ppo|nested|blpo)" -- --config "$f"

f=$(cfg div.yaml $'env:\n  num_envs: 10\n  num_steps: 8\nalgo:\n  name: blpo\n  num_minibatches: 4\n')
expect inconsistent_minibatches "div.yaml:[0-9]+:[0-9]+: .*(divis|divide)" -- --config "$f"

f=$(cfg rank.yaml $'algo:\n  name: blpo\n  hypergrad:\n    rank: 99999\n')
expect rank_too_large "rank.yaml:4:5: .*parameter count" -- --config "$f"

f=$(cfg ok.yaml $'env:\n  num_envs: 8\n  num_steps: 8\nalgo:\n  num_minibatches: 2\nrun:\n  total_steps: 640\n')
expect bad_set "^--set:1:[0-9]+: .*env.num_envs" -- --config "$f" --set env.num_envs=-3
expect bad_seed "^--seed:1:[0-9]+: " -- --config "$f" --seed abc
expect unknown_flag "unknown option.*--confg" -- --confg "$f"
expect missing_config "no such|not found|cannot find" -- --config "$tmp/does-not-exist.yaml"
expect bad_device "device" -- --config "$f" --device tpu

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
