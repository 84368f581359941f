#!/usr/bin/env bash
# The main job: everything from nothing to a trained, evaluated lesion detector and pictures.
#
#   bash tools/demo.sh
#
# 1. set-up (tools/setup_env.sh; seconds once done),
# 2. a synthetic DeepLesion-format data set (16-bit PNG slices, DL_info.csv) in work_dirs/demo/data,
# 3. `mim train mmdet configs/mp3d_fpn_synthetic_demo.py`: a reduced MP3D FPN (9 slices, GTM),
# 4. `mim test ... --checkpoint` with the FROC metric, then the report:
#    work_dirs/demo/froc.json (sensitivity at 0.5-16 FPs/image, mAP@0.5), froc_curve.png,
#    overlays/*.png (detections vs ground truth on test key slices),
# 5. whole-volume detection in every test sub-volume (mp3d-detect-volumes) scored with the 3D
#    FROC of DeepLesion's manual 3D test set against the generator's 3D ground truth and against
#    the key-slice boxes: work_dirs/demo/volumes/ (froc_3d.json, froc_3d.png, ...).
# About 10 minutes on 2 CPU cores once the set-up exists; on a GPU machine the same commands
# train with AMP. Variables: MP3D_VENV (see setup_env.sh), MP3D_DEMO_SEED (default 0).
set -Eeuo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MP3D_VENV:-$REPO/.venv}"
SEED="${MP3D_DEMO_SEED:-0}"
CONFIG=configs/mp3d_fpn_synthetic_demo.py
OUT=work_dirs/demo
export DEEPLESION_ROOT="$OUT/data"   # the demo config reads its data from DEEPLESION_ROOT
STEP='start'
step() { STEP="$1"; echo; echo "==> [demo] $1"; }
trap 'echo "demo.sh: FAILED at step: ${STEP} (exit code $?; see the output above)" >&2' ERR

step "set-up"
bash "$REPO/tools/setup_env.sh"
cd "$REPO"
PY="$VENV/bin/python"
MIM="$VENV/bin/mim"
START=$(date +%s)

step "synthetic DeepLesion-format data in $OUT/data"
# --reuse: kept if it is this seed's data from this generator, written anew otherwise
"$PY" tools/make_synthetic_deeplesion.py --out "$OUT/data" --preset demo --seed "$SEED" --reuse

step "train: mim train mmdet $CONFIG"
rm -f "$OUT"/epoch_*.pth "$OUT/last_checkpoint"
"$MIM" train mmdet "$CONFIG" --work-dir "$OUT" --cfg-options "randomness.seed=$SEED"
CKPT="$(cat "$OUT/last_checkpoint")"

step "test: mim test mmdet $CONFIG --checkpoint $CKPT"
"$MIM" test mmdet "$CONFIG" --checkpoint "$CKPT" --work-dir "$OUT/test" \
  --out "$OUT/predictions.pkl" --cfg-options "test_evaluator.out_dir=$OUT"

step "report: FROC table, froc.json, FROC curve, overlays"
"$PY" tools/eval_froc.py "$OUT/predictions.pkl" --summary "$OUT/froc.json" --plot-dir "$OUT"
"$PY" tools/draw_detections.py "$OUT/predictions.pkl" --out-dir "$OUT/overlays" --num 6

step "volumes: 3D lesion candidates in every test sub-volume, 3D FROC (LENS protocol)"
# --restart: the results of an earlier demo run (another checkpoint) are replaced
"$PY" tools/detect_volumes.py --deeplesion "$OUT/data" --split test --config "$CONFIG" \
  --checkpoint "$CKPT" --out "$OUT/volumes" --score-thr 0.05 --restart
"$PY" tools/eval_volumes.py "$OUT/volumes/detections_3d.jsonl" --gt "$OUT/data/lesions_3d.pkl" \
  --split test --summary "$OUT/volumes/froc_3d.json" --plot "$OUT/volumes/froc_3d.png"
"$PY" tools/eval_volumes.py "$OUT/volumes/detections_3d.jsonl" --gt "$OUT/data/DL_info.csv" \
  --split test --summary "$OUT/volumes/froc_3d_key_slices.json"
echo
echo "demo finished in $(( $(date +%s) - START )) s after set-up:"
echo "  checkpoint     $CKPT"
echo "  FROC summary   $OUT/froc.json"
echo "  FROC curve     $OUT/froc_curve.png"
echo "  overlays       $OUT/overlays/"
echo "  volume FROC    $OUT/volumes/froc_3d.json, froc_3d.png (3D), froc_3d_key_slices.json"
