#!/usr/bin/env bash
# The test command: sets up the environment if needed (tools/setup_env.sh), runs the whole test
# suite, then runs the tests whose assertions depend on values a network computes (marker
# `cpu_numerics`, tests/conftest.py) twice more, side by side, one thread each, under other CPU
# kernel settings:
#   ATEN_CPU_CAPABILITY=default                          (torch's scalar kernels)
#   ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2     (what an AVX2-only CPU runs)
# so that a result that holds on one CPU's instruction set (or thread count) only fails here.
# The main run spreads the test files over one worker process per core (pytest-xdist,
# `--dist loadfile`: a file's tests and its module fixtures stay in one worker);
# MP3D_TEST_WORKERS=N sets the number, 0 runs in this process.
# Extra arguments go to every pytest run, e.g. `bash tools/run_tests.sh -k froc -x`;
# MP3D_CPU_VARIANTS=0 skips the two extra runs.
set -Eeuo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MP3D_VENV:-$REPO/.venv}"
bash "$REPO/tools/setup_env.sh"
cd "$REPO"
WORKERS="${MP3D_TEST_WORKERS:-$(nproc)}"
XDIST=()
if [[ "$WORKERS" != 0 ]]; then
  XDIST=(-n "$WORKERS" --dist loadfile)
fi
"$VENV/bin/python" -m pytest "${XDIST[@]}" "$@"
if [[ "${MP3D_CPU_VARIANTS:-1}" == 0 ]]; then
  exit 0
fi
SETTINGS=('ATEN_CPU_CAPABILITY=default' 'ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2')
RUNS="$(mktemp -d)"
trap 'rm -rf "$RUNS"' EXIT
pids=()
for i in "${!SETTINGS[@]}"; do
  echo "==> [run_tests] cpu_numerics tests under ${SETTINGS[$i]} OMP_NUM_THREADS=1"
  env ${SETTINGS[$i]} OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -m cpu_numerics \
    --basetemp "$RUNS/tmp$i" "$@" > "$RUNS/log$i" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!SETTINGS[@]}"; do
  status=0
  wait "${pids[$i]}" || status=$?
  echo "==> [run_tests] cpu_numerics tests under ${SETTINGS[$i]}: exit code $status"
  # 5 = nothing selected (e.g. -k matched no cpu_numerics test): not a failure
  if [[ $status != 0 && $status != 5 ]]; then
    cat "$RUNS/log$i"
    failed=1
  else
    tail -n 3 "$RUNS/log$i"
  fi
done
if [[ $failed != 0 ]]; then
  echo "run_tests.sh: the cpu_numerics tests FAILED under another CPU kernel setting" >&2
  exit 1
fi
