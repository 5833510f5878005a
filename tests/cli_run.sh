#!/usr/bin/env bash
# End to end through the binary: a short run writes its run directory
# (effective config that loads back, metrics CSV with one row per iteration
# and agent, summary), refuses to reuse a non-empty --out without --force,
# and --print-config writes nothing.
#   cli_run.sh PATH/TO/blpo-gpu ALGO
set -u
bin="$1" algo="$2"
# shellcheck source=tests/check_lib.sh
. "$(dirname "$0")/check_lib.sh"

args=(--config cartpole.yaml --set env.num_envs=8 --set env.num_steps=16 --set algo.num_minibatches=2
      --set run.total_steps=384 --set run.num_seeds=2 --set "algo.name=$algo" --device cpu)
"$bin" "${args[@]}" --out "$tmp/run" >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
check "run exits 0" "[ $rc -eq 0 ]"
check "config.yaml written" "[ -s '$tmp/run/config.yaml' ]"
check "summary.json written" "grep -q '\"final_return_mean_over_agents\"' '$tmp/run/summary.json'"
check "summary.json names the version and the build's commit" \
  "grep -q '\"blpo_gpu_version\"' '$tmp/run/summary.json' && grep -Eq '\"commit\": \"([0-9a-f]{7}(-dirty)?|unknown)\"' '$tmp/run/summary.json'"
check "--version names the commit" "'$bin' --version | grep -Eq '^blpo-gpu [0-9.]+ \\(commit ([0-9a-f]{7}(-dirty)?|unknown)\\)\$'"
# 384 / (8*16) = 3 iterations x 2 agents + header
check "metrics.csv has 6 rows" "[ \$(wc -l < '$tmp/run/metrics.csv') -eq 7 ]"
check "every metrics row has the header's column count" "[ \$(awk -F, '{print NF}' '$tmp/run/metrics.csv' | sort -u | wc -l) -eq 1 ]"
check "no temporary files left" "[ -z \"\$(ls '$tmp/run' | grep tmp)\" ]"
"$bin" --config "$tmp/run/config.yaml" --print-config >"$tmp/reprint" 2>&1
check "effective config loads back identically" "cmp -s '$tmp/run/config.yaml' '$tmp/reprint'"
"$bin" "${args[@]}" --out "$tmp/run" >/dev/null 2>"$tmp/err2"
rc=$?
check "existing --out refused with exit 2" "[ $rc -eq 2 ] && grep -q -- '--force' '$tmp/err2'"
"$bin" "${args[@]}" --out "$tmp/run" --force --quiet >/dev/null 2>&1
check "--force reuses the directory" "[ $? -eq 0 ]"
"$bin" "${args[@]}" --print-config --out "$tmp/never" >/dev/null 2>&1
check "--print-config creates nothing" "[ ! -e '$tmp/never' ]"
check_summary
