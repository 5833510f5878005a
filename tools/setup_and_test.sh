#!/usr/bin/env bash
# The README's test command: installs missing packages, builds, and runs the
# test suite (every test not labelled `long`; GPU tests skip without a GPU).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/setup.sh"
build="${BLPO_BUILD_DIR:-$root/build}"
ctest --test-dir "$build" --output-on-failure -LE long -j "${BLPO_TEST_JOBS:-1}" "$@"
