#!/usr/bin/env bash
# The test command: sets up the environment if needed (tools/setup_env.sh), runs the whole test
# suite, then runs the tests whose assertions depend on values a network computes (marker
# `cpu_numerics`, tests/conftest.py) twice more, under other CPU kernel settings:
#   ATEN_CPU_CAPABILITY=default                          (torch's scalar kernels)
#   ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2     (what an AVX2-only CPU runs; the same
#                                                         as the first run on such a CPU)
# so that a result that holds on one CPU's instruction set only fails here too.
# Extra arguments go to every pytest run, e.g. `bash tools/run_tests.sh -k froc -x`;
# MP3D_CPU_VARIANTS=0 skips the two extra runs.
set -Eeuo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MP3D_VENV:-$REPO/.venv}"
bash "$REPO/tools/setup_env.sh"
cd "$REPO"
"$VENV/bin/python" -m pytest "$@"
if [[ "${MP3D_CPU_VARIANTS:-1}" == 0 ]]; then
  exit 0
fi
for setting in 'ATEN_CPU_CAPABILITY=default' 'ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2'; do
  echo "==> [run_tests] cpu_numerics tests under $setting"
  status=0
  env $setting "$VENV/bin/python" -m pytest -m cpu_numerics "$@" || status=$?
  # 5 = nothing selected (e.g. -k matched no cpu_numerics test): not a failure
  if [[ $status != 0 && $status != 5 ]]; then
    echo "run_tests.sh: FAILED under $setting (exit code $status)" >&2
    exit $status
  fi
done
