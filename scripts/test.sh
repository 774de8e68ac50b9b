#!/usr/bin/env bash
# Runs every test: sets up the Python virtualenv the end-to-end tests send spans with,
# then the whole Rust suite (unit, integration and end-to-end tests against the real
# binary on loopback), and closes with the totals over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
export TRACEGATE_TEST_PYTHON="$PWD/.venv/bin/python"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
echo
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
