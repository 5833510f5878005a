#!/usr/bin/env bash
# The project's shell scripts parse (bash -n), and where shellcheck is
# installed (tools/setup.sh installs it when it can) none has a shellcheck
# warning. Most matter most where they cannot be run here: gpu_bundle.sh,
# gpu_check.sh and bench_suite.sh run on a lent GPU machine whose time is
# short, so a typo found there costs the lease.
# usage: scripts_lint.sh SOURCE_DIR
set -uo pipefail
cd "$1" || exit 2
scripts=(tools/*.sh tools/peers/*.sh tests/*.sh .ci/run)
rc=0
for f in "${scripts[@]}"; do
  bash -n "$f" || {
    echo "FAIL bash -n $f"
    rc=1
  }
done
echo "bash -n: ${#scripts[@]} scripts"
if command -v shellcheck >/dev/null; then
  shellcheck -x -S warning "${scripts[@]}" || rc=1
  echo "shellcheck -S warning: ${#scripts[@]} scripts"
else
  echo "shellcheck not installed: only bash -n"
fi
exit $rc
