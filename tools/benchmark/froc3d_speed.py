"""Benchmark: vectorised 3D FROC (LENS protocol) vs the plain per-detection loop.

Both compute the same protocol (checked here: the curves must be identical). The data are
synthetic but shaped like DeepLesion's manual 3D test set as a detector's output: 1,000
sub-volumes of 512 x 512 x 20-60 slices, about 5.4 lesions each (LENS: 5,447 lesions in
1,000 sub-volumes), 60 3D candidates per sub-volume, about a sixth of them near a lesion.

Run::

    python tools/benchmark/froc3d_speed.py [--volumes 1000] [--dets 60] [--repeats 7]

Prints the best and median time of the vectorised ``sens_at_fp_3d`` (curve + reading) over
``--repeats`` runs, the time of one run of the loop reference, and their ratio (the issue's
target: at least 15x).
"""
import argparse
import os
import statistics
import time
from typing import List, Tuple

import numpy as np

from mp3d_mmdet.evaluation.functional import DEFAULT_FPS_3D, froc_curve_3d, sens_at_fp_3d
from mp3d_mmdet.evaluation.functional.froc_reference import (froc_curve_3d_reference,
                                                             lens_sensitivity_reference)


IMAGE_SIZE = 512


def lens_like(num_volumes: int, dets_per_volume: int, lesions_per_volume: float,
              seed: int = 0) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Synthetic 3D candidates and lesions: one ``(n, 7)`` / ``(g, 6)`` array per volume."""
    rng = np.random.default_rng(seed)
    boxes_per_volume, gts_per_volume = [], []
    for _ in range(num_volumes):
        depth = int(rng.integers(20, 61))
        g = int(rng.poisson(lesions_per_volume))
        size = np.concatenate([np.exp(rng.uniform(np.log(5), np.log(80), (g, 2))),
                               rng.integers(1, 12, (g, 1))], axis=1)
        extent = np.array([IMAGE_SIZE, IMAGE_SIZE, depth], dtype=float)
        corner = np.floor(rng.uniform(0, extent - size))
        gts = np.concatenate([corner, corner + np.floor(size) - 1], axis=1)

        num_near = int(rng.binomial(dets_per_volume, 1 / 6)) if g else 0
        source = gts[rng.integers(0, g, num_near)] if g else np.zeros((0, 6))
        sides = source[:, 3:] - source[:, :3] + 1
        near = source + np.round(rng.normal(0, 0.25, (num_near, 6))
                                 * np.concatenate([sides, sides], axis=1))
        num_far = dets_per_volume - num_near
        far_size = np.concatenate([np.exp(rng.uniform(np.log(5), np.log(80), (num_far, 2))),
                                   rng.integers(1, 12, (num_far, 1))], axis=1)
        far_corner = np.floor(rng.uniform(0, extent - far_size))
        far = np.concatenate([far_corner, far_corner + np.floor(far_size) - 1], axis=1)
        boxes = np.concatenate([near, far])
        boxes[:, 3:] = np.maximum(boxes[:, 3:], boxes[:, :3])
        scores = np.concatenate([rng.beta(2.5, 2.5, num_near), rng.beta(1, 5, num_far)])
        boxes_per_volume.append(np.concatenate([boxes, scores[:, None]], axis=1))
        gts_per_volume.append(gts)
    return boxes_per_volume, gts_per_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--volumes', type=int, default=1000)
    parser.add_argument('--dets', type=int, default=60, help='candidates per volume')
    parser.add_argument('--lesions', type=float, default=5.447, help='mean lesions per volume')
    parser.add_argument('--repeats', type=int, default=7, help='runs of the vectorised core')
    args = parser.parse_args()

    boxes, gts = lens_like(args.volumes, args.dets, args.lesions)
    print(f'data: {args.volumes} volumes, {sum(len(b) for b in boxes)} candidates, '
          f'{sum(len(g) for g in gts)} lesions; {os.cpu_count()} CPU(s), numpy {np.__version__}')

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        sens = sens_at_fp_3d(boxes, gts)  # the curve and its reading
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    curve = froc_curve_3d(boxes, gts)

    start = time.perf_counter()
    ref_sens_curve, ref_fp_curve = froc_curve_3d_reference(boxes, gts)
    ref_sens = lens_sensitivity_reference(ref_fp_curve, ref_sens_curve, DEFAULT_FPS_3D)
    reference = time.perf_counter() - start

    identical = (np.array_equal(curve.sensitivity, ref_sens_curve)
                 and np.array_equal(curve.fp_per_image, ref_fp_curve)
                 and np.array_equal(sens, ref_sens))
    print('sensitivity @ FPs/volume ' + ', '.join(f'{f:g}' for f in DEFAULT_FPS_3D) + ': ' +
          ', '.join(f'{s:.4f}' for s in sens))
    print(f'vectorised sens_at_fp_3d: best {best:.3f} s, median {median:.3f} s '
          f'({args.repeats} runs)')
    print(f'loop reference (1 run): {reference:.3f} s')
    print(f'speed-up (reference / best): {reference / best:.1f}x (target >= 15x)')
    print(f'identical curves and sensitivities: {identical}')
    if not identical:
        raise SystemExit('the vectorised core and the loop reference disagree')


if __name__ == '__main__':
    main()
