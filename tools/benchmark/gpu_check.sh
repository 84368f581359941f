#!/usr/bin/env bash
# The paper's training path and the backbones' speed on one GPU, in one command.
#
#   bash tools/benchmark/gpu_check.sh --prepare         # here, with PyPI: fills .gpu_check/
#   bash tools/benchmark/gpu_check.sh [--out DIR]       # on the GPU machine, no network needed
#   bash tools/benchmark/gpu_check.sh --dry-run [--out DIR]   # on a CPU: the steps without CUDA
#
# On the GPU machine, in order (each step's output goes to the terminal; the results to DIR,
# default work_dirs/gpu_check):
#  1. the stack: used as installed if `import mmdet, mmcv.ops` works; otherwise installed from
#     .gpu_check/ (made by --prepare: wheels of mmengine, mmdet, openmim and what they need
#     beyond a PyTorch/CUDA image, and the mmcv 2.1.0 source) into $MP3D_GPU_CHECK_SITE
#     (default /tmp/mp3d_gpu_check_site), with mmcv's ops compiled for the CPU on all cores
#     (CUDA hidden while building). NMS and RoIAlign then run on the GPU through torchvision
#     (mp3d_mmdet.utils.torchvision_ops); env.json says which way they ran;
#  2. the routing's tests, its CUDA test included (torchvision's kernels against mmcv's CPU ops);
#  3. 512-px synthetic DeepLesion-format data (12 patients);
#  4. `mim train mmdet configs/mp3d_fpn_deeplesion_2x.py` as it is (AMP, batch 2, its
#     multi-scale 448-576 px augmentation), for $MP3D_GPU_CHECK_EPOCHS epochs (default 4,
#     about 45 iterations) with validation after the last, then `mim test --checkpoint`;
#  5. forward + backward of MP3D-63, MR3D, FPN+3DCE and mmdet's 2D ResNet-50 backbones at
#     batch 2 with AMP (tools/benchmark/backbone_speed.py), then MP3D and MR3D under each
#     execution variant of backbone_speed.py's VARIANTS ($MP3D_GPU_CHECK_VARIANTS; `compile`
#     last, and only while the run is younger than $MP3D_GPU_CHECK_COMPILE_BEFORE seconds,
#     default 360);
#  6. DIR/gpu_check.json with everything, printed as tables.
# DIR gets at most 6 files (env.json, backbones.json, variants.json, variant_compile.json,
# gpu_check.json and whatever the caller tees there); data, checkpoints and logs go to
# $MP3D_GPU_CHECK_WORK (default /tmp/mp3d_gpu_check_work on a GPU, DIR/work in a dry run),
# emptied at every run and therefore refused if it holds files of anything else.
# --dry-run does 2-6 on this machine's stack at quick-check sizes (64 px, 2 iterations of one
# image, 32 px backbones in eval mode, no AMP, no compile) so that the script is tested where
# no GPU is; the test suite runs it (tests/test_tools/test_gpu_check.py).
set -Eeuo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREP="$REPO/.gpu_check"
MODE=gpu
RESULTS=''
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry-run ;;
    --out) RESULTS="${2:?--out needs a folder}"; shift ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
STEP='start'
step() { STEP="$1"; echo; echo "==> [gpu_check $(date +%H:%M:%S)] $1"; }
trap 'echo "gpu_check.sh: FAILED at step: ${STEP} (exit code $?; see the output above)" >&2' ERR

if [[ "$MODE" == prepare ]]; then
  PY="${MP3D_VENV:-$REPO/.venv}/bin/python"
  [[ -x "$PY" ]] || PY=python3
  step "download wheels for Python 3.12 (the GPU image's) and the mmcv source into $PREP"
  mkdir -p "$PREP/wheels" "$PREP/src"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$PREP/wheels" \
    mmengine==0.10.7 mmdet==3.3.0 openmim==0.3.9 model-index==0.1.11 ordered-set==4.1.0 \
    yapf==0.43.0 platformdirs==4.14.8 addict==2.4.0 termcolor==3.3.0 terminaltables==3.1.10 \
    pycocotools==2.0.11 shapely==2.2.0 setuptools==81.0.0
  "$PY" -m pip download -q --no-deps --no-binary=:all: -d "$PREP/src" mmcv==2.1.0
  du -sh "$PREP"
  echo "ready: the GPU machine needs the working tree and $PREP (git-ignored)"
  exit 0
fi

if [[ "$MODE" == dry-run ]]; then
  RESULTS="${RESULTS:-work_dirs/gpu_check_dry_run}"
  PY="${MP3D_VENV:-$REPO/.venv}/bin/python"
  [[ -x "$PY" ]] || PY=python
  MIM=("$PY" -m mim)
  PATIENTS=3; SIZE=64; EPOCHS=1
  SPEED=(--shape 32 32 --num-slices 3 --repeats 1 --warmup 0 --batch-size 2)
  VARIANTS="${MP3D_GPU_CHECK_VARIANTS:-no-cudnn-benchmark channels-last fold-spatial half-norm with-cp}"
else
  RESULTS="${RESULTS:-work_dirs/gpu_check}"
  PY=python3
  MIM=("$PY" -m mim)
  PATIENTS=12; SIZE=512; EPOCHS="${MP3D_GPU_CHECK_EPOCHS:-4}"
  SPEED=(--device cuda --amp --backward --batch-size 2 --repeats 10)
  VARIANTS="${MP3D_GPU_CHECK_VARIANTS:-no-cudnn-benchmark channels-last fold-spatial half-norm with-cp compile}"
fi
RESULTS="$(mkdir -p "$RESULTS" && cd "$RESULTS" && pwd)"
# data, checkpoints and logs (hundreds of MB at 512 px): outside the results folder on a GPU
WORK="${MP3D_GPU_CHECK_WORK:-$([[ "$MODE" == gpu ]] && echo /tmp/mp3d_gpu_check_work || echo "$RESULTS/work")}"
# The work folder is emptied at every run: only a missing or empty one, or an earlier run's
# (marked by MARKER), is used, so that no other files are deleted.
MARKER=.mp3d_gpu_check
if [[ -e "$WORK" && ! -f "$WORK/$MARKER" && -n "$(ls -A "$WORK" 2>/dev/null || echo file)" ]]; then
  echo "gpu_check.sh: $WORK is not empty and not a gpu_check work folder (no $MARKER):" \
       "choose another --out or MP3D_GPU_CHECK_WORK" >&2
  exit 1
fi
START=$(date +%s)
cd "$REPO"

if [[ "$MODE" == gpu ]]; then
  step "the stack"
  if ! "$PY" -c 'import mmdet, mmengine, mim, mmcv.ops' 2>/dev/null; then
    SITE="${MP3D_GPU_CHECK_SITE:-/tmp/mp3d_gpu_check_site}"
    if [[ ! -d "$PREP/wheels" ]]; then
      echo "gpu_check.sh: mmdet/mmcv are not installed and $PREP is missing: run" \
           "'bash tools/benchmark/gpu_check.sh --prepare' on a machine with PyPI first" >&2
      exit 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "$PREP"/wheels/*.whl
    export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
    if ! "$PY" -c 'import mmcv.ops' 2>/dev/null; then
      BUILD="$(mktemp -d)"
      tar xzf "$PREP"/src/mmcv-2.1.0.tar.gz -C "$BUILD"
      echo "compiling mmcv 2.1.0's ops for the CPU on $(nproc) cores"
      (cd "$BUILD"/mmcv-2.1.0 && CUDA_VISIBLE_DEVICES='' MMCV_WITH_OPS=1 FORCE_CUDA=0 \
        MAX_JOBS="$(nproc)" "$PY" -m pip wheel -q --no-build-isolation --no-deps \
        -w "$BUILD/dist" .)
      "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" \
        "$BUILD"/dist/mmcv-*.whl
      rm -rf "$BUILD"
    fi
  fi
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  echo "stack ready after $(( $(date +%s) - START )) s"
fi
"$PY" tools/benchmark/gpu_check.py env --out "$RESULTS/env.json"
# From here on a failed step is reported and the next one runs: a run on a lent GPU gives
# what it can, and the exit status says whether everything worked.
FAILED=()
run_step() {  # run_step NAME COMMAND...: run it; on failure note NAME and go on
  local name="$1"; shift
  step "$name"
  if ! "$@"; then
    echo "gpu_check.sh: step FAILED: $name" >&2
    FAILED+=("$name")
    return 1
  fi
}

run_step "NMS / RoIAlign routing tests" \
  "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_utils/test_torchvision_ops.py || true

rm -rf "$WORK" && mkdir -p "$WORK" && touch "$WORK/$MARKER"
CONFIG=configs/mp3d_fpn_deeplesion_2x.py
RUN_CONFIG="$WORK/gpu_check_$(basename "$CONFIG")"
run_step "synthetic DeepLesion-format data, ${SIZE} px, ${PATIENTS} patients" \
  "$PY" -m mp3d_mmdet.cli.make_synthetic_deeplesion --out "$WORK/data" --no-progress \
  --num-patients "$PATIENTS" --image-size "$SIZE" \
&& run_step "the training config: $CONFIG for $EPOCHS epochs" \
  "$PY" tools/benchmark/gpu_check.py train-config "$CONFIG" --data "$WORK/data" \
  --work-dir "$WORK/train" --epochs "$EPOCHS" --out "$RUN_CONFIG" \
  $([[ "$MODE" == dry-run ]] && echo --dry-run) \
&& run_step "mim train mmdet $CONFIG" \
  "${MIM[@]}" train mmdet "$RUN_CONFIG" --work-dir "$WORK/train" \
&& run_step "mim test --checkpoint" \
  "${MIM[@]}" test mmdet "$RUN_CONFIG" --checkpoint "$WORK/train/epoch_$EPOCHS.pth" \
  --work-dir "$WORK/test" || true

detect_volume_timing() {  # mp3d-detect-volume on a 512 x 512 x 60 synthetic CT: fp32, fp16
  "$PY" -c "import sys, SimpleITK as sitk; sys.path.insert(0, 'tools/benchmark')
from volume_speed import SPACING, synthetic_ct
image = sitk.GetImageFromArray(synthetic_ct(512, 60)); image.SetSpacing(SPACING)
sitk.WriteImage(image, '$WORK/ct.nii.gz')" || return 1
  local precision t0
  for precision in fp32 fp16; do
    t0=$(date +%s.%N)
    "$PY" -m mp3d_mmdet.cli.detect_volume "$WORK/ct.nii.gz" --config "$RUN_CONFIG" \
      --checkpoint "$WORK/train/epoch_$EPOCHS.pth" --out "$WORK/volume_$precision" \
      --device "${MP3D_GPU_CHECK_DEVICE:-cuda}" --precision "$precision" --formats none \
      --no-progress || return 1
    "$PY" -c "import json, sys; t = json.load(open(sys.argv[1]))['timings_s']
print('mp3d-detect-volume --precision $precision: %.2f s wall (start-up included), '
      'network %.2f s for 60 slices' % ($(date +%s.%N) - $t0, t['network']))" \
      "$WORK/volume_$precision/detections.json" | tee -a "$RESULTS/detect_volume.txt" \
      || return 1
  done
}
if [[ "$MODE" == gpu && -f "$WORK/train/epoch_$EPOCHS.pth" ]]; then
  run_step "mp3d-detect-volume on the GPU, fp32 and fp16" detect_volume_timing || true
fi

BACKBONES=()
run_step "backbones: MP3D-63, MR3D, FPN+3DCE, ResNet-50" \
  "$PY" tools/benchmark/backbone_speed.py "${SPEED[@]}" --json "$RESULTS/backbones.json" \
  && BACKBONES+=("$RESULTS/backbones.json")
read -r -a OTHERS <<< "${VARIANTS//compile/}"
if [[ ${#OTHERS[@]} -gt 0 ]]; then
  run_step "backbones MP3D-63 and MR3D under the variants ${OTHERS[*]}" \
    "$PY" tools/benchmark/backbone_speed.py "${SPEED[@]}" --models mp3d mr3d \
    --variants "${OTHERS[@]}" --json "$RESULTS/variants.json" \
    && BACKBONES+=("$RESULTS/variants.json")
fi
if [[ " $VARIANTS " == *" compile "* ]]; then
  if (( $(date +%s) - START > ${MP3D_GPU_CHECK_COMPILE_BEFORE:-360} )); then
    echo "variant compile skipped: $(( $(date +%s) - START )) s into the run"
  else
    run_step "backbones MP3D-63 and MR3D, variant compile" \
      "$PY" tools/benchmark/backbone_speed.py "${SPEED[@]}" --models mp3d mr3d \
      --variants compile --json "$RESULTS/variant_compile.json" \
      && BACKBONES+=("$RESULTS/variant_compile.json")
  fi
fi

run_step "summary" \
  "$PY" tools/benchmark/gpu_check.py summary --env "$RESULTS/env.json" --config "$RUN_CONFIG" \
  --train-dir "$WORK/train" --test-dir "$WORK/test" --backbones "${BACKBONES[@]}" \
  --out "$RESULTS/gpu_check.json" || true
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "gpu_check.sh: $(( $(date +%s) - START )) s; FAILED steps: ${FAILED[*]}" >&2
  exit 1
fi
echo "gpu_check.sh: done in $(( $(date +%s) - START )) s"
