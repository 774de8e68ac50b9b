#!/usr/bin/env bash
# Runs every test: sets up the Python virtualenv the end-to-end tests send spans with,
# then the whole Rust suite (unit, integration and end-to-end tests against the real
# binary on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
export TRACEGATE_TEST_PYTHON="$PWD/.venv/bin/python"
cargo test --workspace "$@"
