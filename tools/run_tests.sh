#!/usr/bin/env bash
# The test command: sets up the environment if needed (tools/setup_env.sh), then runs the
# whole test suite. Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k froc -x`.
set -Eeuo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MP3D_VENV:-$REPO/.venv}"
bash "$REPO/tools/setup_env.sh"
cd "$REPO"
exec "$VENV/bin/python" -m pytest "$@"
