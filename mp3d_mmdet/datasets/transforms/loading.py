"""Loading of the N-slice CT input of one DeepLesion key slice from the release's PNG files."""
import os.path as osp
import struct
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ...utils.cpu_memory import retain_freed_cpu_memory
from ...utils.validation import check_hu_window, check_num_slices, ct_spacing_problem
from ..dl_info import slice_file_name
from ..slice_sampling import (DEFAULT_HU_WINDOW, DEFAULT_OUT_RANGE, PNG_HU_OFFSET, SlicePlan,
                              assemble_slices, neighbour_sampling_plan)

__all__ = [
    'LoadCTSlices', 'read_uint16_png', 'read_png_size', 'check_image_size', 'annotation_source'
]


def read_uint16_png(path: str) -> np.ndarray:
    """Decode a DeepLesion slice PNG (single channel, 16 bit) with OpenCV.

    Args:
        path: PNG file.

    Returns:
        Uint16 ``(H, W)`` raw values (``HU + 32768``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded (corrupt / not an image), or is not a
            single-channel 16-bit image.
    """
    if not osp.isfile(path):  # checked first: OpenCV would also print its own warning
        raise FileNotFoundError(f'CT slice file not found: {path}')
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'cannot decode CT slice {path}: corrupt or not an image file')
    if image.dtype != np.uint16:
        raise ValueError(f'CT slice {path} is {image.dtype}, expected a 16-bit PNG (uint16, '
                         'HU = value - 32768)')
    if image.ndim != 2:
        raise ValueError(f'CT slice {path} has shape {image.shape}, expected a single-channel '
                         '(H, W) image')
    return image


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def read_png_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` of a PNG file from its header (reads 24 bytes, decodes nothing).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file does not start with a PNG signature and IHDR chunk.
    """
    try:
        with open(path, 'rb') as handle:
            head = handle.read(24)
    except FileNotFoundError:
        raise FileNotFoundError(f'CT slice file not found: {path}') from None
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b'IHDR':
        raise ValueError(f'CT slice {path} is not a PNG file (no PNG signature and IHDR header)')
    width, height = struct.unpack('>II', head[16:24])
    return int(width), int(height)


def annotation_source(instances: Sequence[dict]) -> str:
    """Name the annotation records of a key slice for error messages.

    Args:
        instances: the key slice's instances, each carrying ``csv_row``
            (``DL_info.csv``) or ``ann_id`` (official JSON), as :class:`DeepLesionDataset`
            makes them.

    Returns:
        E.g. ``"csv row(s) 2, 3"``, ``"annotation id(s) 4890"``, or ``"no annotation"``.
    """
    rows = [inst['csv_row'] for inst in instances if inst.get('csv_row') is not None]
    if rows:
        return 'csv row(s) ' + ', '.join(str(r) for r in rows)
    ids = [inst['ann_id'] for inst in instances if inst.get('ann_id') is not None]
    if ids:
        return 'annotation id(s) ' + ', '.join(str(i) for i in ids)
    return 'no annotation'


def check_image_size(path: str, actual_wh: Tuple[int, int], expected_wh: Tuple[int, int],
                     source: str = '') -> None:
    """Raise if a key slice's real size differs from the annotated one.

    Args:
        path: the slice file.
        actual_wh: ``(width, height)`` of the file.
        expected_wh: ``(width, height)`` the annotation states.
        source: the annotation records stating it (see :func:`annotation_source`),
            named in the message.

    Raises:
        ValueError: one line naming the records, both sizes and the file.
    """
    if tuple(actual_wh) != tuple(expected_wh):
        raise ValueError(f'{source or "annotation"}: annotated size {expected_wh[0]}x'
                         f'{expected_wh[1]} but the key slice {path} is {actual_wh[0]}x'
                         f'{actual_wh[1]} px; boxes would be misplaced')


@TRANSFORMS.register_module()
class LoadCTSlices(BaseTransform):
    """Build the ``H x W x N`` input around a DeepLesion key slice.

    The ``N`` channels sit ``slice_interval`` mm apart, centred on the key slice (channel
    ``N // 2``), in increasing slice-file order; each is linearly interpolated between the
    two nearest real slices of the series, and a missing slice file falls back to the
    nearest available slice between it and the key slice (rule and maths in
    :mod:`mp3d_mmdet.datasets.slice_sampling`, shared with whole-volume
    inference). HU (``png - 32768``) are clipped to ``hu_window`` and scaled linearly to
    ``out_range`` (default -1024 HU -> 0.0, 1050 HU -> 255.0). Every PNG file is decoded once
    per call.

    Required keys: ``img_path`` (key slice PNG), ``series_dir``, ``key_slice``,
    ``slice_interval`` (mm, within the plausible CT range of
    :mod:`mp3d_mmdet.utils.validation`) -- as produced by :class:`DeepLesionDataset`. Where
    ``width`` and ``height`` are given (the annotation's ``Image_size``), the key slice must
    have that size.

    Added keys: ``img`` (float32 ``(H, W, N)``, a view of a contiguous ``(N, H, W)`` array:
    see :func:`~mp3d_mmdet.datasets.slice_sampling.assemble_slices`; resize it
    with :class:`~mp3d_mmdet.datasets.transforms.SliceWiseResize` to keep that layout),
    ``img_shape`` and ``ori_shape`` (``(H, W)``),
    ``slice_paths`` (list of ``N`` ``(lower_path, upper_path)`` files mixed into each channel),
    ``slice_weights`` (float64 ``(N,)`` weight of ``upper_path``), ``slice_order_flipped``
    (bool).

    Args:
        num_slices: ``N``, odd (the paper: 9). Required (configs set it at their top
            level: see :mod:`mp3d_mmdet.utils.config`).
        slice_interval: channel spacing in mm. Defaults to 2.5 (the paper).
        hu_window: HU clip window. Defaults to (-1024, 1050) (the paper).
        out_range: output value range of the window. Defaults to (0, 255).
        flip_slice_order_prob: probability of reversing the channel order (training
            augmentation; the key slice stays in the centre). Defaults to 0.
        retain_freed_memory: on the first call in each process (each dataloader
            worker), make glibc malloc reuse freed memory
            (:func:`mp3d_mmdet.utils.retain_freed_cpu_memory`): a sample's ``N x H x W``
            float32 arrays are above malloc's mmap threshold and would otherwise be mapped and
            page-faulted afresh for every sample. The process keeps its peak heap (a few
            samples' arrays) instead of returning it to the OS. Defaults to True.
    """

    def __init__(self,
                 num_slices: Optional[int] = None,
                 slice_interval: float = 2.5,
                 hu_window: Sequence[float] = DEFAULT_HU_WINDOW,
                 out_range: Sequence[float] = DEFAULT_OUT_RANGE,
                 flip_slice_order_prob: float = 0.0,
                 retain_freed_memory: bool = True) -> None:
        num_slices = check_num_slices(num_slices, owner='LoadCTSlices')
        problem = ct_spacing_problem(slice_interval=slice_interval)
        if problem:
            raise ValueError(f'LoadCTSlices: {problem}')
        check_hu_window(hu_window, out_range, owner='LoadCTSlices')
        if not 0.0 <= flip_slice_order_prob <= 1.0:
            raise ValueError('flip_slice_order_prob must be in [0, 1], got '
                             f'{flip_slice_order_prob!r}')
        self.num_slices = num_slices
        self.slice_interval = float(slice_interval)
        self.hu_window = (float(hu_window[0]), float(hu_window[1]))
        self.out_range = (float(out_range[0]), float(out_range[1]))
        self.flip_slice_order_prob = float(flip_slice_order_prob)
        self.retain_freed_memory = bool(retain_freed_memory)

    def _available_indices(self, series_dir: str, key_slice: int,
                           real_interval: float) -> List[int]:
        """Indices of the slice files present within reach of the ``N`` positions."""
        reach = int(np.ceil((self.num_slices // 2) * self.slice_interval / real_interval + 1e-6))
        return [
            index for index in range(key_slice - reach, key_slice + reach + 1)
            if index == key_slice or osp.isfile(osp.join(series_dir, slice_file_name(index)))
        ]

    def transform(self, results: dict) -> dict:
        """Load the slices of ``results`` (see the class docstring for the keys)."""
        if self.retain_freed_memory:
            retain_freed_cpu_memory()  # once per process
        series_dir = results['series_dir']
        key_slice = int(results['key_slice'])
        real_interval = float(results['slice_interval'])
        key_path = osp.join(series_dir, slice_file_name(key_slice))
        if osp.normpath(key_path) != osp.normpath(results['img_path']):
            raise ValueError(f"img_path {results['img_path']} is not the key slice "
                             f'{slice_file_name(key_slice)} of series_dir {series_dir}')
        source = annotation_source(results.get('instances', []))
        if not osp.isfile(key_path):
            raise FileNotFoundError(f'key slice file {key_path} not found ({source})')
        problem = ct_spacing_problem(slice_interval=real_interval)
        if problem:
            raise ValueError(f'{key_path} ({source}): {problem}')

        plan = neighbour_sampling_plan(key_slice, self.num_slices, self.slice_interval,
                                       real_interval,
                                       self._available_indices(series_dir, key_slice,
                                                               real_interval))

        flipped = bool(self.flip_slice_order_prob > 0
                       and np.random.rand() < self.flip_slice_order_prob)
        if flipped:  # reversing the plan reverses the channels (the key stays in the centre)
            plan = SlicePlan(*(np.ascontiguousarray(field[::-1]) for field in plan))

        def read(index: int) -> np.ndarray:
            return read_uint16_png(osp.join(series_dir, slice_file_name(index)))

        img = assemble_slices(plan, read, self.hu_window, self.out_range,
                              value_offset=-PNG_HU_OFFSET)
        if 'width' in results and 'height' in results:
            check_image_size(key_path, (img.shape[1], img.shape[0]),
                             (results['width'], results['height']), source)
        paths = [(osp.join(series_dir, slice_file_name(lo)),
                  osp.join(series_dir, slice_file_name(up)))
                 for lo, up in zip(plan.lower.tolist(), plan.upper.tolist())]

        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results['slice_paths'] = paths
        results['slice_weights'] = plan.upper_weight.copy()
        results['slice_order_flipped'] = flipped
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_slices={self.num_slices}, '
                f'slice_interval={self.slice_interval}, hu_window={self.hu_window}, '
                f'out_range={self.out_range}, '
                f'flip_slice_order_prob={self.flip_slice_order_prob}, '
                f'retain_freed_memory={self.retain_freed_memory})')
