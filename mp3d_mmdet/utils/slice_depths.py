"""Slice-axis arithmetic of the 3D backbones: how many slices each stage output keeps.

A function of the input slice count and the slice pooling alone, used by the backbone
(:meth:`~mp3d_mmdet.models.backbones.MP3DResNet.output_depths`) and by the config reading
(the neck adapter's depths, :mod:`mp3d_mmdet.utils.config`). Checking a depth value someone
gives (one positive int per level) is :func:`mp3d_mmdet.utils.validation.check_slice_depths`.
"""
from typing import List

__all__ = ['SLICE_POOLINGS', 'slice_depths']

#: ``'none'``: the slice axis keeps its size (MP3D); ``'isotropic'``: it is pooled like the
#: spatial axes (the original P3D).
SLICE_POOLINGS = ('none', 'isotropic')


def _pooled_depth(depth: int) -> int:
    """Slice count after a max-pool of kernel 3, stride 2, padding 1 on that axis."""
    return (depth - 1) // 2 + 1


def slice_depths(num_slices: int, slice_pooling: str = 'none',
                 num_stages: int = 4) -> List[int]:
    """Slice-axis size ``D_i`` of every stage output for ``num_slices`` input slices.

    ``'none'``: ``[N] * num_stages``. ``'isotropic'``: the stem max-pool and a
    ``3 x 1 x 1`` max-pool (stride 2, padding 1) before each of stages 2-4 halve the
    slice axis (rounding up): 9 slices give ``[5, 3, 2, 1]``, 3 slices ``[2, 1, 1, 1]``.

    Args:
        num_slices: input slice count ``N``.
        slice_pooling: one of :data:`SLICE_POOLINGS`.
        num_stages: number of backbone stages.

    Returns:
        ``num_stages`` depths, e.g. the neck adapter's ``num_slices``.

    Raises:
        ValueError: an unknown ``slice_pooling``.
    """
    if slice_pooling not in SLICE_POOLINGS:
        raise ValueError(f'slice_pooling must be one of {SLICE_POOLINGS}, '
                         f'got {slice_pooling!r}')
    if slice_pooling == 'none':
        return [num_slices] * num_stages
    depths, d = [], _pooled_depth(num_slices)
    for i in range(num_stages):
        if i > 0:
            d = _pooled_depth(d)
        depths.append(d)
    return depths
