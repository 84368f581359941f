"""NMS and RoIAlign on CUDA through torchvision when mmcv was compiled without CUDA.

mmdet's two-stage detectors call two of mmcv's compiled ops: ``nms`` (RPN proposals and the
final per-class NMS, through ``mmcv.ops.batched_nms``) and ``RoIAlign`` (the RoI feature
extractor). An mmcv built with CPU ops only -- the build :file:`tools/setup_env.sh` makes by
default, and the only one possible where no ``nvcc`` matches torch's CUDA -- raises
``nms_impl: implementation for device cuda:0 not found`` on the first CUDA batch.

torchvision ships CUDA kernels for both ops with the same definitions:

* ``torchvision.ops.nms`` keeps the same boxes as mmcv's ``nms`` with ``offset=0`` (mmdet's
  default; the legacy ``offset=1`` is refused here rather than computed differently);
* ``torchvision.ops.roi_align`` is the RoIAlign of mmcv's ``pool_mode='avg'`` with the same
  ``aligned`` flag (mmcv's own ``RoIAlign(use_torchvision=True)`` calls it too).

:func:`route_mmcv_ops_to_torchvision` makes exactly these two ops of mmcv run torchvision's
kernels for tensors on the given device types (default CUDA) and leaves every other call to
mmcv. :func:`route_cuda_ops_if_needed` installs it only when the model runs on CUDA and mmcv
has no CUDA ops (:func:`mmcv_has_cuda_ops`);
:class:`~mp3d_mmdet.engine.runner.DeviceAwareRunner` and
:class:`~mp3d_mmdet.volume.VolumeLesionDetector` call it and log when it acts. Another project
that uses neither calls ``route_cuda_ops_if_needed('cuda')`` once before building its model.
"""
from typing import Any, Dict, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ['ROUTED_NOTE', 'mmcv_has_cuda_ops', 'route_cuda_ops_if_needed',
           'route_mmcv_ops_to_torchvision', 'unroute_mmcv_ops', 'torchvision_nms',
           'torchvision_roi_align']

#: What the runner and the volume detector say when they install the routing.
ROUTED_NOTE = ("mmcv has no CUDA ops: nms and RoIAlign run torchvision's CUDA kernels "
               '(mp3d_mmdet.utils.torchvision_ops)')
#: (class, attribute) -> mmcv's original class attribute, while routing is installed.
_ORIGINALS: Dict[Tuple[type, str], Any] = {}


def mmcv_has_cuda_ops() -> bool:
    """Whether mmcv's compiled ops (``mmcv._ext``) were built with CUDA kernels."""
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() != 'not available'


def route_cuda_ops_if_needed(device: Union[str, torch.device]) -> bool:
    """Route mmcv's CUDA ``nms``/``RoIAlign`` to torchvision if ``device`` is CUDA and mmcv
    has no CUDA ops (:func:`route_mmcv_ops_to_torchvision`).

    Args:
        device: the device the model runs on (``'cuda'``, ``'cuda:1'``, ``'cpu'`` ...).

    Returns:
        True if the routing is installed (now or before), False if it is not needed.

    Raises:
        RuntimeError: it is needed and torchvision cannot be imported (one line naming the
            two ways out), instead of mmcv's error at the first CUDA batch.
    """
    if torch.device(device).type != 'cuda' or mmcv_has_cuda_ops():
        return bool(_ORIGINALS)
    try:
        import torchvision  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f'mmcv was built without CUDA ops and torchvision cannot be imported ({error}): '
            'install torchvision matching your torch, or build mmcv with CUDA '
            '(MP3D_MMCV_CUDA=1 bash tools/setup_env.sh)') from None
    route_mmcv_ops_to_torchvision(('cuda', ))
    return True


def torchvision_nms(bboxes: Tensor, scores: Tensor, iou_threshold: float, offset: int,
                    score_threshold: float, max_num: int) -> Tensor:
    """mmcv's ``NMSop.forward`` computed with ``torchvision.ops.nms``.

    Args:
        bboxes: (N, 4) boxes ``x1, y1, x2, y2``.
        scores: (N,) scores.
        iou_threshold: boxes overlapping a kept box by more than this IoU are dropped.
        offset: must be 0 (IoU of continuous boxes, mmdet's default).
        score_threshold: boxes scoring at most this are dropped first (when > 0).
        max_num: keep at most this many (when > 0).

    Returns:
        (K,) int64 indices into ``bboxes`` of the kept boxes, by decreasing score.

    Raises:
        ValueError: ``offset`` is not 0.
    """
    import torchvision
    if offset != 0:
        raise ValueError(f'nms with offset={offset} has no torchvision kernel (offset 0 only); '
                         'build mmcv with CUDA ops (MP3D_MMCV_CUDA=1 bash tools/setup_env.sh)')
    valid_inds = None
    if score_threshold > 0:
        valid_mask = scores > score_threshold
        bboxes, scores = bboxes[valid_mask], scores[valid_mask]
        valid_inds = torch.nonzero(valid_mask, as_tuple=False).squeeze(dim=1)
    inds = torchvision.ops.nms(bboxes, scores.to(bboxes.dtype), float(iou_threshold))
    if max_num > 0:
        inds = inds[:max_num]
    if valid_inds is not None:
        inds = valid_inds[inds]
    return inds


def torchvision_roi_align(roi_align: Any, input: Tensor, rois: Tensor) -> Tensor:
    """mmcv ``RoIAlign(...)(input, rois)`` computed with ``torchvision.ops.roi_align``.

    Args:
        roi_align: an ``mmcv.ops.RoIAlign`` module (its output size, spatial scale, sampling
            ratio and ``aligned`` flag are used).
        input: (N, C, H, W) feature map.
        rois: (K, 5) RoIs ``batch_index, x1, y1, x2, y2`` in input-image pixels.

    Returns:
        (K, C, out_h, out_w) pooled features, differentiable with respect to ``input``.

    Raises:
        ValueError: the module pools with ``pool_mode='max'`` (torchvision averages only).
    """
    import torchvision
    if roi_align.pool_mode != 'avg':
        raise ValueError(f"RoIAlign(pool_mode={roi_align.pool_mode!r}) has no torchvision "
                         "kernel (pool_mode='avg' only); build mmcv with CUDA ops "
                         '(MP3D_MMCV_CUDA=1 bash tools/setup_env.sh)')
    return torchvision.ops.roi_align(input, rois.to(input.dtype), roi_align.output_size,
                                     roi_align.spatial_scale, roi_align.sampling_ratio,
                                     roi_align.aligned)


def route_mmcv_ops_to_torchvision(device_types: Sequence[str] = ('cuda', )) -> bool:
    """Make mmcv's ``nms`` and ``RoIAlign`` run torchvision's kernels on ``device_types``.

    Patches ``mmcv.ops.nms.NMSop.forward`` and ``mmcv.ops.RoIAlign.forward``: a call whose
    tensors are on one of ``device_types`` goes to :func:`torchvision_nms` /
    :func:`torchvision_roi_align`, every other call to mmcv as before. Calling it again
    replaces the device types; :func:`unroute_mmcv_ops` restores mmcv's functions.

    Args:
        device_types: ``torch.device.type`` names whose tensors are routed.

    Returns:
        True if the routing was installed now, False if it was installed already.
    """
    from mmcv.ops.nms import NMSop
    from mmcv.ops.roi_align import RoIAlign
    routed = frozenset(device_types)
    newly = not _ORIGINALS
    unroute_mmcv_ops()
    nms_forward = NMSop.forward
    roi_align_forward = RoIAlign.forward

    def nms_op_forward(ctx: Any, bboxes: Tensor, scores: Tensor, iou_threshold: float,
                       offset: int, score_threshold: float, max_num: int) -> Tensor:
        if bboxes.device.type in routed:
            return torchvision_nms(bboxes, scores, iou_threshold, offset, score_threshold,
                                   max_num)
        return nms_forward(ctx, bboxes, scores, iou_threshold, offset, score_threshold,
                           max_num)

    def roi_align_module_forward(self: Any, input: Tensor, rois: Tensor) -> Tensor:
        if input.device.type in routed and not self.use_torchvision:
            return torchvision_roi_align(self, input, rois)
        return roi_align_forward(self, input, rois)

    _ORIGINALS[(NMSop, 'forward')] = NMSop.__dict__['forward']
    _ORIGINALS[(RoIAlign, 'forward')] = RoIAlign.__dict__['forward']
    NMSop.forward = staticmethod(nms_op_forward)
    RoIAlign.forward = roi_align_module_forward
    return newly


def unroute_mmcv_ops() -> None:
    """Undo :func:`route_mmcv_ops_to_torchvision` (no-op if it is not installed)."""
    for (owner, name), original in _ORIGINALS.items():
        setattr(owner, name, original)
    _ORIGINALS.clear()
