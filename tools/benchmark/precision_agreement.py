"""Does reduced precision change what a user sees? Whole-volume detection at float32 and at
bf16 (or fp16 on a GPU) on the same volumes, side by side from one run:

* the 3D FROC (LENS protocol, ``mp3d-eval-volumes``) of both, per FP rate, as sensitivities
  and as numbers of lesions found; the bar is "within one lesion at every FP rate";
* the candidates matched one to one between the two runs: a float32 candidate and a
  reduced-precision one match when their 3D boxes overlap with IoU >= ``--iou`` (0.9) and
  their scores differ by at most ``--score-tol`` (0.02); unmatched candidates are listed.

    python tools/benchmark/precision_agreement.py --deeplesion work_dirs/demo/data \\
        --config configs/mp3d_fpn_synthetic_demo.py --checkpoint work_dirs/demo/epoch_32.pth

(the demo's trained model and its test sub-volumes, after ``bash tools/demo.sh``). On a CPU
without AVX512_BF16 or AMX, bf16 is emulated: slower than float32, but the same arithmetic.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

import numpy as np

from mp3d_mmdet.structures.boxes import overlap_from_columns
from mp3d_mmdet.volume import read_volume_detections

BIN = osp.dirname(sys.executable)


def _detect(args: argparse.Namespace, precision: str, out: str) -> str:
    subprocess.run([osp.join(BIN, 'mp3d-detect-volumes'), '--deeplesion', args.deeplesion,
                    '--split', args.split, '--config', args.config, '--checkpoint',
                    args.checkpoint, '--out', out, '--score-thr', str(args.score_thr),
                    '--precision', precision, '--device', args.device, '--no-progress',
                    '--restart'], check=True)
    return osp.join(out, 'detections_3d.jsonl')


def _froc(results: str, gt: str, split: str, summary: str) -> Dict:
    subprocess.run([osp.join(BIN, 'mp3d-eval-volumes'), results, '--gt', gt, '--split', split,
                    '--summary', summary], check=True, stdout=subprocess.DEVNULL)
    with open(summary) as handle:
        return json.load(handle)


def match_candidates(reference: np.ndarray, other: np.ndarray, iou_thr: float,
                     score_tol: float) -> Tuple[int, List[int], List[int]]:
    """Greedy one-to-one matching of two volumes' candidates (best score first).

    Args:
        reference: ``(n, 7)`` ``[x1, y1, z1, x2, y2, z2, score]`` of the float32 run.
        other: ``(m, 7)`` of the reduced-precision run.
        iou_thr: smallest 3D IoU of a match.
        score_tol: largest score difference of a match.

    Returns:
        ``(matched, unmatched reference indices, unmatched other indices)``.
    """
    if not len(reference) or not len(other):
        return 0, list(range(len(reference))), list(range(len(other)))
    a, b = reference[:, None, :6], other[None, :, :6]
    iou = overlap_from_columns([a[..., k] for k in range(3)], [a[..., k + 3] for k in range(3)],
                               [b[..., k] for k in range(3)], [b[..., k + 3] for k in range(3)],
                               legacy_plus_one=True, metric='iou')
    close = np.abs(reference[:, 6:7] - other[None, :, 6]) <= score_tol
    taken = np.zeros(len(other), dtype=bool)
    unmatched = []
    for i in np.argsort(-reference[:, 6], kind='stable'):
        ok = (iou[i] >= iou_thr) & close[i] & ~taken
        if ok.any():
            taken[int(np.argmax(np.where(ok, iou[i], -1)))] = True
        else:
            unmatched.append(int(i))
    return int(taken.sum()), unmatched, [int(j) for j in np.flatnonzero(~taken)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--deeplesion', required=True, help='DeepLesion-layout release')
    parser.add_argument('--split', default='test')
    parser.add_argument('--gt', default=None,
                        help='3D ground truth (default: ROOT/lesions_3d.pkl of the generator)')
    parser.add_argument('--config', required=True)
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--precision', default='bf16', choices=('bf16', 'fp16'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thr', type=float, default=0.05)
    parser.add_argument('--iou', type=float, default=0.9)
    parser.add_argument('--score-tol', type=float, default=0.02)
    args = parser.parse_args()
    gt = args.gt or osp.join(args.deeplesion, 'lesions_3d.pkl')
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for precision in ('fp32', args.precision):
            results = _detect(args, precision, osp.join(tmp, precision))
            runs[precision] = (read_volume_detections(results)[1],
                               _froc(results, gt, args.split, osp.join(tmp, f'{precision}.json')))
    (ref_records, ref_froc), (red_records, red_froc) = runs['fp32'], runs[args.precision]
    lesions = ref_froc['subsets']['all']['lesions']
    print(f'3D FROC of {ref_froc["num_subvolumes"]} sub-volumes, {lesions} lesions '
          f'(fp32 vs {args.precision}; lesions found):')
    worst = 0
    for fp, a, b in zip(ref_froc['fps'], ref_froc['subsets']['all']['sensitivity'],
                        red_froc['subsets']['all']['sensitivity']):
        found_a, found_b = round(a * lesions), round(b * lesions)
        worst = max(worst, abs(found_a - found_b))
        print(f'  {fp:>6g} FPs: {100 * a:6.2f} % ({found_a}) vs {100 * b:6.2f} % ({found_b})')
    print(f'largest difference: {worst} lesion(s) (bar: 1)')
    matched = total_ref = total_red = 0
    for name, record in ref_records.items():
        got, lost, new = match_candidates(record['boxes'], red_records[name]['boxes'],
                                          args.iou, args.score_tol)
        matched += got
        total_ref += len(record['boxes'])
        total_red += len(red_records[name]['boxes'])
        if lost or new:
            print(f'  {name}: {len(lost)} fp32 and {len(new)} {args.precision} candidate(s) '
                  'without a partner')
    print(f'candidates matched one to one (3D IoU >= {args.iou:g}, scores within '
          f'{args.score_tol:g}): {matched} of {total_ref} (fp32) / {total_red} '
          f'({args.precision})')


if __name__ == '__main__':
    main()
