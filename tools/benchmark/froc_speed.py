"""Benchmark: vectorised FROC vs the plain per-detection loop, on a DeepLesion-sized test set.

Both compute the same protocol (checked here: the curves must be identical). The data are
synthetic but shaped like DeepLesion's official test split as a detector's output: 4,831 key
slices, about one lesion per slice (4,927 lesions; some slices with 2-4, a few with none),
100 detections per slice sorted by descending float32 score (as mmdet returns them), about a
tenth of them near a lesion (several duplicates per lesion) and the rest elsewhere.

Run::

    python tools/benchmark/froc_speed.py [--images 4831] [--dets 100] [--repeats 7]

Prints the best and median time of the vectorised ``froc_curve`` + ``sens_at_fp`` over
``--repeats`` runs, the time of one run of the loop reference, and their ratio.
"""
import argparse
import os
import statistics
import time
from typing import List, Tuple

import numpy as np

from mp3d_mmdet.evaluation.functional import DEFAULT_FPS, froc_curve
from mp3d_mmdet.evaluation.functional.froc_reference import (froc_curve_reference,
                                                             interpolate_sensitivity_reference)


IMAGE_SIZE = 512


def deeplesion_like(num_images: int, dets_per_image: int, num_lesions: int,
                    seed: int = 0) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Synthetic detections and lesions, one ``(n, 5)`` / ``(g, 4)`` array per image.

    Lesion counts: every image gets one, the remaining ``num_lesions - num_images`` are
    spread over random images (about 2% of images get none, their lesion moved elsewhere).
    """
    rng = np.random.default_rng(seed)
    counts = np.ones(num_images, dtype=np.int64)
    empty = rng.choice(num_images, size=num_images // 50, replace=False)
    counts[empty] = 0
    extra = num_lesions - int(counts.sum())
    np.add.at(counts, rng.integers(0, num_images, size=extra), 1)

    boxes_per_image, gts_per_image = [], []
    for g in counts:
        size = np.exp(rng.uniform(np.log(6), np.log(80), (g, 2)))  # 6..80 px lesions
        corner = rng.uniform(0, IMAGE_SIZE - size)
        gts = np.concatenate([corner, corner + size], axis=1).round(1)

        num_near = int(rng.binomial(dets_per_image, 0.1)) if g else 0
        source = gts[rng.integers(0, g, num_near)] if g else np.zeros((0, 4))
        wh = source[:, 2:] - source[:, :2]
        near = source + rng.normal(0, 0.2, (num_near, 4)) * np.concatenate([wh, wh], axis=1)
        num_far = dets_per_image - num_near
        far_size = np.exp(rng.uniform(np.log(6), np.log(80), (num_far, 2)))
        far_corner = rng.uniform(0, IMAGE_SIZE - far_size)
        far = np.concatenate([far_corner, far_corner + far_size], axis=1)
        boxes = np.concatenate([near, far])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        scores = np.concatenate([rng.beta(2.5, 2.5, num_near), rng.beta(1, 5, num_far)])
        dets = np.concatenate([boxes, scores[:, None]], axis=1).astype(np.float32)
        boxes_per_image.append(dets[np.argsort(-dets[:, 4], kind='stable')])  # as mmdet
        gts_per_image.append(gts)
    return boxes_per_image, gts_per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=4831)
    parser.add_argument('--dets', type=int, default=100, help='detections per image')
    parser.add_argument('--lesions', type=int, default=4927)
    parser.add_argument('--repeats', type=int, default=7, help='runs of the vectorised core')
    args = parser.parse_args()

    boxes, gts = deeplesion_like(args.images, args.dets, args.lesions)
    num_dets = sum(len(b) for b in boxes)
    num_gts = sum(len(g) for g in gts)
    print(f'data: {args.images} images, {num_dets} detections, {num_gts} lesions; '
          f'{os.cpu_count()} CPU(s), numpy {np.__version__}')

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        curve = froc_curve(boxes, gts)
        sens = curve.sens_at_fp(DEFAULT_FPS)
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)

    start = time.perf_counter()
    ref_sens_curve, ref_fp_curve = froc_curve_reference(boxes, gts)
    ref_sens = interpolate_sensitivity_reference(ref_fp_curve, ref_sens_curve, DEFAULT_FPS)
    reference = time.perf_counter() - start

    identical = (np.array_equal(curve.sensitivity, ref_sens_curve)
                 and np.array_equal(curve.fp_per_image, ref_fp_curve)
                 and np.array_equal(sens, ref_sens))
    print('sensitivity @ FPs/image ' + ', '.join(f'{f:g}' for f in DEFAULT_FPS) + ': ' +
          ', '.join(f'{s:.4f}' for s in sens))
    print(f'vectorised froc_curve + sens_at_fp: best {best:.3f} s, median {median:.3f} s '
          f'({args.repeats} runs)')
    print(f'loop reference (1 run):             {reference:.3f} s')
    print(f'speed-up (reference / best):        {reference / best:.1f}x')
    print(f'identical curves and sensitivities: {identical}')
    if not identical:
        raise SystemExit('the vectorised core and the loop reference disagree')


if __name__ == '__main__':
    main()
