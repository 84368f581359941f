#!/usr/bin/env bash
# One-command set-up of the mp3d_mmdet stack in a virtual environment.
#
#   bash tools/setup_env.sh            # creates/updates .venv/ at the repository root
#
# Installs torch, mmengine 0.10.7, mmcv 2.1.0 WITH compiled ops (built from the PyPI sdist
# unless a matching wheel is cached), mmdet 3.3.0, openmim, SimpleITK, pycocotools, highdicom
# (DICOM SR output), pytest (with pytest-xdist) and this plugin in editable mode, then verifies
# that mmcv's compiled ops run. Where the machine allows it (root and apt-get), it also installs
# the Debian packages the viewer-file tests use: chromium (the HTML report rendered headless)
# and dicom3tools (dciodvfy checks the DICOM SR), and Node.js with npm (Debian nodejs, npm),
# whose npm ci installs the pinned @cornerstonejs/adapters, core, tools and dcmjs into
# tools/viewer_checks/node_modules (git-ignored: the SR read as OHIF reads it); elsewhere
# those tests are skipped, said so.
# Idempotent: on a ready environment it only re-verifies (a few seconds).
#
# Environment variables (all optional):
#   MP3D_VENV          virtual environment path            (default: <repo>/.venv)
#   MP3D_PYTHON        interpreter that creates the venv     (default: python3)
#   MP3D_TORCH_SPEC    torch requirement                     (default: torch==2.13.0)
#   MP3D_TORCH_INDEX   pip index URL for torch, e.g. PyTorch's CUDA 12.x index for a GPU build
#                      (default: none, i.e. the CPU wheel this machine's pip finds)
#   MP3D_MMCV_CUDA     1 = build mmcv's ops with CUDA (FORCE_CUDA=1; needs nvcc)   (default: 0)
#   MP3D_WHEEL_CACHE   where built mmcv wheels are kept and reused
#                      (default: ~/.cache/mp3d_mmdet/wheels)
#   MAX_JOBS           parallel compile jobs for mmcv          (default: number of cores)
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MP3D_VENV:-$REPO/.venv}"
PYTHON="${MP3D_PYTHON:-python3}"
TORCH_SPEC="${MP3D_TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX="${MP3D_TORCH_INDEX:-}"
MMCV_CUDA="${MP3D_MMCV_CUDA:-0}"
WHEEL_CACHE="${MP3D_WHEEL_CACHE:-$HOME/.cache/mp3d_mmdet/wheels}"
MMCV_VERSION=2.1.0
# setuptools: torch 2.13 wants >= 77; 82 removed pkg_resources, which mmcv/mmengine import.
SETUPTOOLS_SPEC='setuptools>=77,<82'
STACK=(
  'mmengine==0.10.7' 'mmdet==3.3.0' 'openmim==0.3.9' 'numpy>=1.23,<2' 'opencv-python>=4.5,<4.12'
  'SimpleITK>=2.2' 'nibabel>=5' 'pycocotools>=2.0.6' 'matplotlib>=3.5' 'tqdm' 'pytest>=7' 'pytest-xdist>=3' 'hypothesis>=6'
  # DICOM SR; pyjpegls 1.4 is the last release for numpy < 2
  'highdicom==0.28.2' 'pydicom==3.0.2' 'pyjpegls==1.4.0'
)
# Debian packages of the viewer-file tests: command -> package
SYSTEM_TOOLS=(chromium:chromium dciodvfy:dicom3tools node:nodejs npm:npm)
VIEWER_CHECKS="$REPO/tools/viewer_checks"  # package.json + package-lock.json of the Node checks

STEP='start'
step() { STEP="$1"; echo "==> [setup_env] $1"; }
trap 'echo "setup_env.sh: FAILED at step: ${STEP} (exit code $?; see the output above)" >&2' ERR

# Everything that decides what gets installed; a change re-runs the installation.
fingerprint() {
  {
    cat "$REPO/tools/setup_env.sh" "$REPO/setup.py"
    echo "$TORCH_SPEC|$TORCH_INDEX|$MMCV_CUDA|$MMCV_VERSION|$PYTHON"
  } | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.mp3d_setup_stamp"

verify() {
  "$VENV/bin/python" - <<'PY'
import torch
from mmcv.ops import RoIAlign, batched_nms

boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
dets, keep = batched_nms(boxes, scores, torch.zeros(3), dict(type='nms', iou_threshold=0.5))
assert keep.tolist() == [0, 2], f'mmcv batched_nms gave {keep.tolist()}'
feat = torch.arange(16.).view(1, 1, 4, 4)
out = RoIAlign((2, 2), 1.0, 0)(feat, torch.tensor([[0., 0., 0., 3., 3.]]))
assert out.shape == (1, 1, 2, 2), f'mmcv RoIAlign gave shape {tuple(out.shape)}'
import mmdet, mmengine, mp3d_mmdet  # noqa: E401,F401
print(f'verified: torch {torch.__version__}, mmcv ops on CPU, mmengine {mmengine.__version__}, '
      f'mmdet {mmdet.__version__}, mp3d_mmdet {mp3d_mmdet.__version__}')
PY
}

system_tools() {
  local missing=() entry
  for entry in "${SYSTEM_TOOLS[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    step "install the Debian packages of the viewer-file tests (${missing[*]})"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || \
       { apt-get update -qq >/dev/null 2>&1 && \
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; }; then
      return 0
    fi
  fi
  echo "==> [setup_env] note: ${missing[*]} not installed (needs root and apt-get); the tests" \
       "that render the HTML report or validate the DICOM SR with them are skipped"
}

# The Node packages of the viewer checks, exactly as package-lock.json pins them; re-installed
# only when the lock file changed since the last install.
viewer_checks_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "==> [setup_env] note: node/npm not found; the test that reads the DICOM SR as OHIF" \
         "does (tools/viewer_checks) is skipped"
    return 0
  fi
  local installed="$VIEWER_CHECKS/node_modules/.package-lock.json"
  if [[ -f "$installed" && "$installed" -nt "$VIEWER_CHECKS/package-lock.json" ]]; then
    return 0
  fi
  step "install the Node packages of the viewer checks (npm ci in $VIEWER_CHECKS)"
  (cd "$VIEWER_CHECKS" && npm ci --no-audit --no-fund --loglevel=error)
}

system_tools
viewer_checks_node
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]]; then
  step "environment at $VENV is up to date; verifying"
  verify
  exit 0
fi

step "create the virtual environment at $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

step "install build tools ($SETUPTOOLS_SPEC, wheel, ninja)"
"${PIP[@]}" install -q "$SETUPTOOLS_SPEC" wheel ninja

step "install $TORCH_SPEC"
if [[ -n "$TORCH_INDEX" ]]; then
  "${PIP[@]}" install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX"
else
  "${PIP[@]}" install -q "$TORCH_SPEC"
fi
TORCH_VERSION="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
PY_TAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
CUDA_TAG="$([[ "$MMCV_CUDA" == 1 ]] && echo cuda || echo cpu)"
# An mmcv wheel is tied to the torch build it was compiled against: key the cache by it.
MMCV_CACHE="$WHEEL_CACHE/mmcv-$MMCV_VERSION/torch-$TORCH_VERSION-$PY_TAG-ops-$CUDA_TAG"

step "install the stack (${STACK[*]})"
"${PIP[@]}" install -q "${STACK[@]}" 'addict' 'packaging' 'Pillow' 'pyyaml' 'yapf'

MMCV_WHEEL="$(ls "$MMCV_CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)"
if [[ -z "$MMCV_WHEEL" ]]; then
  step "build mmcv $MMCV_VERSION with compiled ops from source (about 8 minutes on 2 cores)"
  BUILD_DIR="$(mktemp -d)"
  # Build tools again: openmim's dependencies pull setuptools below what torch needs.
  "${PIP[@]}" install -q "$SETUPTOOLS_SPEC" wheel ninja
  MMCV_WITH_OPS=1 FORCE_CUDA="$MMCV_CUDA" MAX_JOBS="${MAX_JOBS:-$(nproc)}" PATH="$VENV/bin:$PATH" \
    "${PIP[@]}" wheel --no-cache-dir --no-build-isolation --no-deps -w "$BUILD_DIR" "mmcv==$MMCV_VERSION"
  mkdir -p "$MMCV_CACHE"
  mv "$BUILD_DIR"/mmcv-"$MMCV_VERSION"-*.whl "$MMCV_CACHE"/
  rm -rf "$BUILD_DIR"
  MMCV_WHEEL="$(ls "$MMCV_CACHE"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)"
else
  step "reuse the cached mmcv wheel $MMCV_WHEEL"
fi
step "install mmcv from $MMCV_WHEEL"
"${PIP[@]}" install -q --no-deps --force-reinstall "$MMCV_WHEEL"

step "pin $SETUPTOOLS_SPEC (openmim's dependency opendatalab asks for an old one; pkg_resources must stay)"
"${PIP[@]}" install -q "$SETUPTOOLS_SPEC" 2>&1 | grep -v 'dependency conflicts\|opendatalab\|resolver does not' || true

step "install mp3d_mmdet (editable) from $REPO"
"${PIP[@]}" install -q --no-build-isolation --no-deps -e "$REPO"

step "verify mmcv ops and imports"
verify
fingerprint > "$STAMP"
step "done: activate with 'source $VENV/bin/activate'"
