#!/usr/bin/env bash
# Creates .venv with the official OpenTelemetry Python SDK and OTLP exporters, which the
# end-to-end tests use to send real spans. Idempotent: a complete venv is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp=$venv/.tracegate-requirements
requirements=tests/py/requirements.txt
if [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "setup-venv: $python not found; install Python 3.9+" >&2; exit 1; }
echo "setup-venv: creating $venv with $(cat "$requirements" | tr '\n' ' ')" >&2
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
