"""Time of one N-slice DeepLesion training sample vs the bare decode of the PNGs it reads.

For every sample of the training split, measured side by side in one run (after one warm-up
pass so that both read from the page cache):

* ``sample``: ``dataset[i]`` with the paper's training pipeline
  (``train_pipeline`` of ``configs/mp3d_fpn_deeplesion_2x.py``) -- LoadCTSlices
  (decode + interpolate + clip/scale), LoadAnnotations, RandomChoiceResize {448, 512, 576}
  with SliceWiseResize, the flips, PackDetInputs -- i.e. what one dataloader worker does per
  sample;
* ``mmdet Resize``: the same pipeline with mmdet's own ``Resize`` as the resize type (which
  interleaves the channels; PackDetInputs then transposes them back), for comparison;
* ``load``: LoadCTSlices alone;
* ``decode``: ``cv2.imread(path, IMREAD_UNCHANGED)`` of exactly the PNG files the sample
  reads (each once).

LoadCTSlices makes malloc keep freed memory in the process it runs in (its default
``retain_freed_memory=True``, as in every dataloader worker), so all four run with it.

Prints per slice interval and overall: ms per sample, ms of bare decode, their ratio
(target <= 1.3), and the sample rate of one worker against an assumed GPU consumption rate
(see ``GPU_ASSUMPTION``).

Usage::

    python tools/benchmark/loader_speed.py                      # generates 512 px data
    python tools/benchmark/loader_speed.py --data-root data/DeepLesion --max-samples 200
"""
import argparse
import copy
import os.path as osp
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Dict, List

import cv2
import numpy as np
import torch
from mmengine.registry import init_default_scope

from mp3d_mmdet.datasets import DeepLesionDataset
from mp3d_mmdet.datasets.transforms import LoadCTSlices
from mp3d_mmdet.synthetic import make_synthetic_deeplesion
from mp3d_mmdet.utils.config import load_config

PAPER_CONFIG = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'configs',
                        'mp3d_fpn_deeplesion_2x.py')

# MP3D FPN, 9 slices, 512 x 512: 248.93 "GFLOPs" per forward pass (paper, Table 2) -- in
# the paper's convention, which counts a multiply-add as one operation (see
# docs/model_complexity.md), i.e. ~498 GFLOP. A training step costs about 3x the forward pass
# (forward + backward for activations and weights): ~1.5 TFLOP per sample. The paper trains
# on one NVIDIA TITAN V (12 GB) with mixed precision: 110 TFLOPS tensor-core peak, of which
# detection training with GroupNorm and depthwise-separable 3D convolutions uses little;
# ~12 TFLOPS effective (~11 %) is a generous estimate -> 1.5 / 12 s = 125 ms per sample =
# 8 samples/s. (Cross-check: the MP3D-63 backbone alone trains at 46 ms per sample on an
# H100 at batch 1 -- docs/model_complexity.md --, i.e. ~27 TFLOPS effective on a card with
# 9x the TITAN V's tensor peak.)
GPU_SAMPLES_PER_SECOND = 8.0
GPU_ASSUMPTION = (f'assumed GPU consumption: {GPU_SAMPLES_PER_SECOND:g} samples/s (MP3D FPN 9 '
                  'slices: 249 GMAC = ~500 GFLOP forward x ~3 for training = ~1.5 '
                  'TFLOP/sample; TITAN V mixed precision at ~12 TFLOPS effective, ~11 % of its '
                  '110 TFLOPS tensor-core peak)')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', help='DeepLesion-format folder; default: generate one')
    parser.add_argument('--num-patients', type=int, default=8,
                        help='patients of the generated data set')
    parser.add_argument('--image-size', type=int, default=512,
                        help='image size of the generated data set')
    parser.add_argument('--num-slices', type=int, default=9)
    parser.add_argument('--max-samples', type=int, default=60)
    parser.add_argument('--repeats', type=int, default=3, help='timed passes (median taken)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def decode_files(paths: List[str]) -> None:
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert image is not None and image.dtype == np.uint16, path


def unique_files(slice_paths) -> List[str]:
    return sorted({path for pair in slice_paths for path in pair})


def main() -> None:
    args = parse_args()
    init_default_scope('mmdet')
    # one dataloader worker = one core (torch also uses 1 thread inside DataLoader workers)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root
        if data_root is None:
            data_root = osp.join(tmp, 'synthetic_deeplesion')
            start = time.perf_counter()
            make_synthetic_deeplesion(data_root, num_patients=args.num_patients, seed=args.seed,
                                      image_size=args.image_size, progress=False)
            print(f'generated {data_root} ({args.image_size} px, {args.num_patients} patients) '
                  f'in {time.perf_counter() - start:.1f} s')
        pipeline = load_config(PAPER_CONFIG, {'num_slices': args.num_slices}
                               ).to_dict()['train_pipeline']
        dataset = DeepLesionDataset(data_root=data_root, split='train', exclude_noisy=False,
                                    pipeline=pipeline)
        mmdet_resize = copy.deepcopy(pipeline)
        assert mmdet_resize[2]['resize_type'] == 'SliceWiseResize', mmdet_resize[2]
        mmdet_resize[2]['resize_type'] = 'Resize'
        dataset_mmdet_resize = DeepLesionDataset(data_root=data_root, split='train',
                                                 exclude_noisy=False, pipeline=mmdet_resize)
        loader = LoadCTSlices(**{k: v for k, v in pipeline[0].items() if k != 'type'})
        indices = list(range(min(len(dataset), args.max_samples)))
        infos = [dataset.get_data_info(i) for i in indices]
        files = [unique_files(loader(copy.deepcopy(info))['slice_paths']) for info in infos]

        np.random.seed(args.seed)
        for i in indices:  # warm-up: page cache, lazy imports
            dataset[i]
            dataset_mmdet_resize[i]
            decode_files(files[i])

        times: Dict[str, List[List[float]]] = {
            k: [[] for _ in indices] for k in ('decode', 'load', 'sample', 'mmdet')}
        for _ in range(args.repeats):
            for i in indices:
                start = time.perf_counter()
                decode_files(files[i])
                times['decode'][i].append(time.perf_counter() - start)
                info = copy.deepcopy(infos[i])
                start = time.perf_counter()
                loader(info)
                times['load'][i].append(time.perf_counter() - start)
                start = time.perf_counter()
                dataset[i]
                times['sample'][i].append(time.perf_counter() - start)
                start = time.perf_counter()
                dataset_mmdet_resize[i]
                times['mmdet'][i].append(time.perf_counter() - start)
        median = {k: np.array([statistics.median(t) for t in v]) for k, v in times.items()}

    groups = defaultdict(list)
    for i, info in zip(indices, infos):
        groups[f'{info["slice_interval"]:g} mm, {info["width"]} px'].append(i)
    groups['all'] = indices
    print(f'\n{args.num_slices}-slice training samples at 2.5 mm, median of {args.repeats} '
          'timed passes, one thread')
    print(f'{"series":>16} {"n":>4} {"files":>6} {"decode ms":>10} {"load ms":>9} '
          f'{"sample ms":>10} {"load/dec":>9} {"sample/dec":>11} {"w/ mmdet Resize":>16}')
    for name, members in sorted(groups.items(), key=lambda kv: (kv[0] == 'all', kv[0])):
        decode = median['decode'][members].sum()
        load = median['load'][members].sum()
        sample = median['sample'][members].sum()
        mmdet = median['mmdet'][members].sum()
        n = len(members)
        print(f'{name:>16} {n:>4} {np.mean([len(files[i]) for i in members]):>6.1f} '
              f'{1e3 * decode / n:>10.2f} {1e3 * load / n:>9.2f} {1e3 * sample / n:>10.2f} '
              f'{load / decode:>9.2f} {sample / decode:>11.2f} {mmdet / decode:>16.2f}')
    total_sample = median['sample'].sum() / len(indices)
    ratio = median['sample'].sum() / median['decode'].sum()
    rate = 1.0 / total_sample
    load_ratio = median['load'].sum() / median['decode'].sum()
    print(f'\nN-slice assembly (LoadCTSlices: decode + interpolate + clip) / bare decode = '
          f'{load_ratio:.2f}')
    print(f'whole training sample (assembly + augmentation + packing) / bare decode = '
          f'{ratio:.2f} (target <= 1.3: {"met" if ratio <= 1.3 else "NOT met"})')
    print('the same with mmdet\'s Resize instead of SliceWiseResize / bare decode = '
          f'{median["mmdet"].sum() / median["decode"].sum():.2f}')
    print(GPU_ASSUMPTION)
    print(f'one worker: {rate:.1f} samples/s = {rate / GPU_SAMPLES_PER_SECOND:.2f}x the assumed '
          f'GPU rate ({"sustains" if rate >= GPU_SAMPLES_PER_SECOND else "does NOT sustain"} '
          'it alone)')


if __name__ == '__main__':
    main()
