"""Centre-slice transform module (CTM): keep the key (centre) slice of 3D feature maps.

The conversion of Fang et al. (MICCAI 2019) the MP3D paper compares its GTM with
(Table 3, "MP3D w/ CTM"): of a 3D map ``(C, D, H, W)`` only the ``C`` 2D maps of the
centre slice ``D // 2`` are kept.
"""
from numbers import Integral
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from ...utils.validation import check_slice_depths

__all__ = ['CenterSliceTransform']


@MODELS.register_module()
class CenterSliceTransform(BaseModule):
    """CTM neck adapter: ``(B, C_i, D_i, H_i, W_i)`` -> ``(B, C_i, H_i, W_i)`` = slice ``D_i // 2``.

    Args:
        in_channels: optional channels ``C_i`` per level, checked at forward when given.
        num_slices: optional slice-axis size ``D_i`` (one int for all levels or one per
            level), checked at forward when given; ``None`` accepts any odd ``D_i``.

    No parameters. The slice axis of every input must be odd (an even count has no
    centre slice). Output tensors are views of the inputs (no copy).
    """

    def __init__(self,
                 in_channels: Optional[Sequence[int]] = None,
                 num_slices: Optional[Union[int, Sequence[int]]] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.in_channels = None if in_channels is None else list(in_channels)
        if num_slices is None or isinstance(num_slices, Integral):
            self.num_slices = num_slices if num_slices is None else check_slice_depths(
                num_slices, 1, owner='CenterSliceTransform', odd=True)[0]
        else:
            self.num_slices = check_slice_depths(num_slices, len(num_slices),
                                                 owner='CenterSliceTransform', odd=True)

    def _expected_depth(self, level: int) -> Optional[int]:
        if self.num_slices is None or isinstance(self.num_slices, int):
            return self.num_slices
        return self.num_slices[level]

    def forward(self, inputs: Union[List[Tensor], Tuple[Tensor, ...]]) -> Tuple[Tensor, ...]:
        """Take the centre slice of every level: (B, C, D, H, W) -> (B, C, H, W)."""
        if self.in_channels is not None and len(inputs) != len(self.in_channels):
            raise ValueError(f'CenterSliceTransform: got {len(inputs)} levels, expected '
                             f'{len(self.in_channels)}')
        if isinstance(self.num_slices, list) and len(inputs) != len(self.num_slices):
            raise ValueError(f'CenterSliceTransform: got {len(inputs)} levels, expected '
                             f'{len(self.num_slices)} (num_slices={self.num_slices})')
        outs = []
        for i, x in enumerate(inputs):
            if x.dim() != 5:
                raise ValueError(f'CenterSliceTransform: level {i} must be (B, C, D, H, W), '
                                 f'got {tuple(x.shape)}')
            d = x.shape[2]
            expected = self._expected_depth(i)
            if expected is not None and d != expected:
                raise ValueError(
                    f'CenterSliceTransform: level {i} has {d} slices but num_slices='
                    f'{expected}; the backbone num_slices must match the neck adapter')
            if d % 2 == 0:
                raise ValueError(f'CenterSliceTransform: level {i} has an even slice count '
                                 f'{d}, which has no centre slice')
            if self.in_channels is not None and x.shape[1] != self.in_channels[i]:
                raise ValueError(f'CenterSliceTransform: level {i} has {x.shape[1]} '
                                 f'channels, expected {self.in_channels[i]}')
            outs.append(x[:, :, d // 2])
        return tuple(outs)
