# shellcheck shell=bash
# Sourced by the shell tests: a temporary directory $tmp removed on exit,
# `check NAME CONDITION` (CONDITION is eval'd; ok/FAIL line per check) and
# `check_summary`, whose status is the test's.
set -u
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
check() { if eval "$2"; then passes=$((passes + 1)); echo "ok   $1"; else fails=$((fails + 1)); echo "FAIL $1"; fi; }
check_summary() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
