"""Seconds per slice of whole-volume inference, and the share spent outside the network.

Measured side by side in one run, on a synthetic 512 x 512 x 100-slice CT volume (0.7 x 0.7
x 1.25 mm, written as .nii.gz) with the paper's model (configs/mp3d_fpn_deeplesion_2x.py; random
weights unless ``--checkpoint`` is given -- the speed does not depend on them):

* ``read``: :func:`mp3d_mmdet.volume.read_ct_volume` (SimpleITK read, checks, reorientation);
* ``assemble``: the N-slice input of every slice (z interpolation at the model's 2.5 mm from
  the volume's 1.25 mm, HU window) -- :func:`sample_slices_from_volume`;
* ``pipeline``: the config's test transforms after loading (SliceWiseResize, PackDetInputs);
* ``network``: ``model.test_step`` (data preprocessor + forward + box post-processing);
* ``link``: :func:`link_slice_detections` + :func:`measure_lesion_candidates`, on the boxes of
  the run (and, as a bound, on 100 boxes per slice -- the model's ``max_per_img``).

Every non-network step runs on all slices. The network is slow on a CPU (seconds per
512 px slice), so ``--network-slices K`` runs it on K evenly spaced slices only and
extrapolates its time to the whole volume (``--quick``: K = 2); the printout says which.

    python tools/benchmark/volume_speed.py --quick
    python tools/benchmark/volume_speed.py --num-slices-volume 100 --network-slices 100

``--throughput`` instead prints slices per second of batch detection from one run on the
same synthetic volumes (``--throughput-volumes`` of ``--size`` px x ``--throughput-slices``):
with a tiny MP3D (8 base channels), the network alone (batch 1 and 4) against
:func:`~mp3d_mmdet.volume.detect_volume_batch` end to end (reading, linking and writing
included; with and without reading ahead), ``mp3d-detect-volumes`` with 1 process and with 2
under torchrun (the threads split between them; start-up included); with the paper's model,
the network in float32 and in bf16 (fp16 on CUDA) where the device has it.

    python tools/benchmark/volume_speed.py --throughput --threads 2
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time
import warnings

import numpy as np
import SimpleITK as sitk
import torch

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mp3d_mmdet.volume import (VolumeLesionDetector, link_slice_detections,  # noqa: E402
                               measure_lesion_candidates, plan_in_plane_resize,
                               read_ct_volume)
from mp3d_mmdet.datasets.slice_sampling import \
    sample_slices_from_volume  # noqa: E402

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SPACING = (0.7, 0.7, 1.25)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=osp.join(REPO, 'configs',
                                                     'mp3d_fpn_deeplesion_2x.py'))
    parser.add_argument('--checkpoint', default=None, help='weights (default: random init)')
    parser.add_argument('--num-slices-volume', type=int, default=100)
    parser.add_argument('--size', type=int, default=512, help='in-plane size of the volume')
    parser.add_argument('--network-slices', type=int, default=None,
                        help='run the network on this many evenly spaced slices and '
                        'extrapolate (default: all)')
    parser.add_argument('--quick', action='store_true', help='--network-slices 2')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--throughput', action='store_true',
                        help='instead: slices/s of batch detection (module docstring)')
    parser.add_argument('--throughput-volumes', type=int, default=4)
    parser.add_argument('--throughput-slices', type=int, default=16,
                        help='slices per volume of --throughput')
    parser.add_argument('--paper-slices', type=int, default=2,
                        help='slices the paper model runs on for fp32 vs bf16')
    return parser.parse_args()


def synthetic_ct(size: int, depth: int, seed: int = 0) -> np.ndarray:
    """``(depth, size, size)`` int16 HU: air, an elliptical body, organs and a few lesions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    body = ((xx - 0.5) / 0.42)**2 + ((yy - 0.52) / 0.34)**2 < 1
    organ = ((xx - 0.35) / 0.15)**2 + ((yy - 0.5) / 0.2)**2 < 1
    volume = np.empty((depth, size, size), np.int16)
    for z in range(depth):
        hu = np.where(body, 40.0, -1000.0) + np.where(organ, 20.0, 0.0)
        lesion = ((xx - 0.6 - 0.001 * z) / 0.03)**2 + ((yy - 0.45) / 0.025)**2 < 1
        hu = hu + np.where(lesion & (abs(z - depth / 2) < 8), 80.0, 0.0)
        volume[z] = np.rint(hu + rng.normal(0, 12, (size, size))).astype(np.int16)
    return volume


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.throughput:
        return throughput(args)
    depth = args.num_slices_volume
    network_slices = 2 if args.quick else (args.network_slices or depth)
    network_slices = min(network_slices, depth)
    print(f'volume {args.size} x {args.size} x {depth} slices at {SPACING} mm; config '
          f'{osp.relpath(args.config, REPO)}; device {args.device}, torch threads '
          f'{torch.get_num_threads()}, batch {args.batch_size}')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'ct.nii.gz')
        image = sitk.GetImageFromArray(synthetic_ct(args.size, depth))
        image.SetSpacing(SPACING)
        sitk.WriteImage(image, path)
        start = time.perf_counter()
        volume = read_ct_volume(path)
        read_s = time.perf_counter() - start

    torch.manual_seed(0)
    detector = VolumeLesionDetector(args.config, args.checkpoint, args.device)
    s = detector.settings
    sx, sy, sz = volume.spacing
    resize_cfg, _, rule = plan_in_plane_resize(s.resize, volume.slice_shape, (sx, sy),
                                               detector.pixel_spacing)
    pipeline = detector.build_slice_pipeline(resize_cfg)
    print(f'model input: {s.num_slices} slices every {s.slice_interval} mm, {rule}')

    # non-network steps on every slice
    assemble_s = pipeline_s = 0.0
    for z in range(depth):
        start = time.perf_counter()
        img = sample_slices_from_volume(volume.hu, z, s.num_slices, s.slice_interval, sz,
                                        s.hu_window, s.out_range)
        middle = time.perf_counter()
        pipeline(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_id=z,
                      img_path=path, slice_interval=sz, pixel_spacing=sx))
        assemble_s += middle - start
        pipeline_s += time.perf_counter() - middle

    # the network on `network_slices` evenly spaced slices (the detector's own loop)
    chosen = np.unique(np.linspace(0, depth - 1, network_slices).round().astype(int)).tolist()
    detector.detect(volume, batch_size=args.batch_size, score_thr=0.05, slices=chosen[:1],
                    progress=False)  # warm-up (allocations, oneDNN kernels)
    start = time.perf_counter()
    run = detector.detect(volume, batch_size=args.batch_size, score_thr=0.05, slices=chosen,
                          progress=True)
    detect_s = time.perf_counter() - start
    network_per_slice = run.timings['network'] / len(chosen)
    postprocess_per_slice = run.timings['postprocess'] / len(chosen)

    start = time.perf_counter()
    tracks = link_slice_detections(run.boxes, run.scores)
    measure_lesion_candidates(tracks, volume.geometry, volume.original_geometry)
    link_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, args.size - 40, (depth, 100, 2))
    dense = [np.concatenate([xy[z], xy[z] + rng.uniform(8, 40, (100, 2))], 1)
             for z in range(depth)]
    start = time.perf_counter()
    dense_tracks = link_slice_detections(dense, [rng.random(100) for _ in range(depth)])
    measure_lesion_candidates(dense_tracks, volume.geometry)
    link_dense_s = time.perf_counter() - start

    network_s = network_per_slice * depth
    outside = read_s + assemble_s + pipeline_s + postprocess_per_slice * depth + link_s
    total = outside + network_s
    extrapolated = '' if len(chosen) == depth else (
        f' (network timed on {len(chosen)} of {depth} slices and extrapolated)')
    print(f'\nper volume{extrapolated}:')
    rows = [('read (SimpleITK + checks)', read_s), ('assemble N-slice inputs', assemble_s),
            ('test pipeline (resize, pack)', pipeline_s),
            ('network (test_step)', network_s),
            ('box post-processing', postprocess_per_slice * depth),
            ('linking + measurements', link_s)]
    for name, seconds in rows:
        print(f'  {name:32s} {seconds:9.3f} s  {1000 * seconds / depth:9.2f} ms/slice  '
              f'{100 * seconds / total:6.2f} %')
    print(f'  {"total":32s} {total:9.3f} s  {total / depth:9.3f} s/slice')
    print(f'\nseconds per slice: {total / depth:.3f} (network {network_per_slice:.3f})')
    print(f'share outside the network: {100 * outside / total:.2f} % (target < 15 %)')
    print(f'linking bound: 100 boxes on each of {depth} slices -> {len(dense_tracks)} tracks in '
          f'{link_dense_s:.3f} s ({100 * link_dense_s / total:.2f} % of the total)')
    print(f'(detector loop incl. per-slice input for the timed slices: {detect_s:.2f} s)')
    return 0


# ---------------------------------------------------------------------------------------------
# --throughput: rates of the batch command (network only vs end to end, fp32 vs bf16,
# batch 1 vs k, 1 vs 2 processes)

TINY_MODEL = """
_base_ = {base!r}
from mp3d_mmdet.models.detector_width import reduced_width_detector
model = reduced_width_detector(_base_.model, base_channels=8, stage_blocks=[1, 1, 1, 1],
                               fpn_channels=32, fc_channels=32, norm_groups=4)
"""


def _write_batch_inputs(folder: str, size: int, depth: int, count: int) -> str:
    """``count`` synthetic volumes as .nii.gz and a list file naming them."""
    paths = []
    for i in range(count):
        image = sitk.GetImageFromArray(synthetic_ct(size, depth, seed=i))
        image.SetSpacing(SPACING)
        paths.append(osp.join(folder, f'ct{i}.nii.gz'))
        sitk.WriteImage(image, paths[-1])
    listing = osp.join(folder, 'volumes.txt')
    with open(listing, 'w') as handle:
        handle.write('\n'.join(paths) + '\n')
    return listing


def _network_rate(detector: VolumeLesionDetector, volumes: list, batch_size: int) -> float:
    """Slices per second of ``model.test_step`` alone over ``volumes`` (in memory)."""
    seconds = slices = 0
    for volume in volumes:
        run = detector.detect(volume, batch_size=batch_size, score_thr=0.05, progress=False)
        seconds += run.timings['network']
        slices += volume.num_slices
    return slices / seconds


def _batch_command(listing: str, out: str, config: str, checkpoint: str, args: list,
                   processes: int) -> float:
    """Wall seconds of ``mp3d-detect-volumes`` (start-up included) with 1 or more processes
    (torchrun, the CPU threads split between them)."""
    import subprocess
    command = ['-m', 'mp3d_mmdet.cli.detect_volumes', '--list', listing, '--out', out,
               '--config', config, '--checkpoint', checkpoint, '--no-progress'] + args
    env = dict(os.environ)
    if processes > 1:
        command = ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node',
                   str(processes)] + command + ['--launcher', 'pytorch']
        env['OMP_NUM_THREADS'] = str(max(1, torch.get_num_threads() // processes))
    start = time.perf_counter()
    subprocess.run([sys.executable] + command, check=True, env=env, capture_output=True)
    return time.perf_counter() - start


class _Rows(list):
    """The report's rows, each printed as it is added: (name, slices/s, rate compared with)."""

    def append(self, row: tuple) -> None:
        if not self:
            print(f'\n{"":64s} {"slices/s":>9s} {"ratio":>7s}')
        name, rate, base = row
        ratio = '' if base is None else f'{rate / base:7.2f}'
        print(f'{name:64s} {rate:9.2f} {ratio:>7s}', flush=True)
        super().append(row)


def throughput(args: argparse.Namespace) -> int:
    """The ``--throughput`` report (module docstring)."""
    from mp3d_mmdet.volume import (batch_settings, cpu_bf16_flags, detect_volume_batch,
                                   resolve_precision, volume_detect_function,
                                   volume_inputs_from_list_file)
    size, depth, count, k = args.size, args.throughput_slices, args.throughput_volumes, 4
    print(f'{count} volumes of {size} x {size} x {depth} slices; torch threads '
          f'{torch.get_num_threads()}; CPU bf16: {", ".join(cpu_bf16_flags()) or "none"}')
    with tempfile.TemporaryDirectory() as tmp:
        listing = _write_batch_inputs(tmp, size, depth, count)
        tiny = osp.join(tmp, 'tiny.py')
        with open(tiny, 'w') as handle:
            handle.write(TINY_MODEL.format(base=args.config))
        torch.manual_seed(0)
        detector = VolumeLesionDetector(tiny, None, args.device, precision='fp32')
        checkpoint = osp.join(tmp, 'tiny.pth')
        torch.save({'state_dict': detector.model.state_dict()}, checkpoint)
        inputs = volume_inputs_from_list_file(listing)
        volumes = [item.read() for item in inputs]
        _network_rate(detector, volumes[:1], 1)  # warm-up
        rows = _Rows()
        network = _network_rate(detector, volumes, 1)
        rows.append(('tiny model, network only, batch 1', network, None))
        rows.append((f'tiny model, network only, batch {k}',
                     _network_rate(detector, volumes, k), network))
        settings = batch_settings(tiny, checkpoint, precision='fp32')
        detect = volume_detect_function(detector, batch_size=1, score_thr=0.05)
        for prefetch in (1, 0):
            start = time.perf_counter()
            detect_volume_batch(inputs, osp.join(tmp, f'out{prefetch}'), settings,
                                lambda: detect, progress=False, prefetch=prefetch)
            rate = count * depth / (time.perf_counter() - start)
            rows.append((f'tiny model, end to end (read ahead: {bool(prefetch)}), batch 1',
                         rate, network))
        del volumes
        one = _batch_command(listing, osp.join(tmp, 'p1'), tiny, checkpoint,
                             ['--precision', 'fp32', '--batch-size', '1'], 1)
        two = _batch_command(listing, osp.join(tmp, 'p2'), tiny, checkpoint,
                             ['--precision', 'fp32', '--batch-size', '1'], 2)
        rows.append(('tiny model, mp3d-detect-volumes, 1 process (with start-up)',
                     count * depth / one, None))
        rows.append(('tiny model, mp3d-detect-volumes, 2 processes (with start-up)',
                     count * depth / two, count * depth / one))

        paper = VolumeLesionDetector(args.config, None, args.device, precision='fp32')
        slices = list(range(0, depth, max(1, depth // args.paper_slices)))[:args.paper_slices]
        volume = inputs[0].read()
        paper.detect(volume, slices=slices[:1], progress=False)  # warm-up
        fp32 = paper.detect(volume, slices=slices, progress=False).timings['network']
        rows.append(('paper model, network only, fp32', len(slices) / fp32, None))
        reduced = resolve_precision('auto', args.device)  # what a user's run would take
        if reduced != 'fp32':
            paper.precision = reduced
            paper.detect(volume, slices=slices[:1], progress=False)
            low = paper.detect(volume, slices=slices, progress=False).timings['network']
            rows.append((f'paper model, network only, {paper.precision}', len(slices) / low,
                         len(slices) / fp32))
        else:
            print('bf16: not supported on this CPU (no avx512_bf16 / amx_bf16): --precision '
                  'auto uses fp32')
    print('(ratio: to the row it is compared with: batch 1, network only, 1 process, fp32)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
