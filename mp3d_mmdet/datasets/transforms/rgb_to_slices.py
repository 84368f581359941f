"""Natural RGB images as 3-slice "volumes" for the supervised 3D pre-training on COCO.

Zhang et al., MICCAI 2020, section 2.2 and Fig. 2: the 3 colour channels of a COCO image
are read as 3 adjacent slices, so that the MP3D FPN, which takes ``N`` slices stacked as
``N`` channels, learns inter-slice (here: inter-colour) filters from COCO's boxes.
"""
import numpy as np
from mmcv.transforms import BaseTransform

from mmdet.registry import TRANSFORMS

__all__ = ['RGBToSlices', 'SLICE_ORDER']

#: The colour channel of every output slice: slice 0 = R, slice 1 = G (the "key slice",
#: centre channel ``3 // 2``), slice 2 = B.
SLICE_ORDER = ('R', 'G', 'B')
INPUT_ORDERS = ('bgr', 'rgb')


@TRANSFORMS.register_module()
class RGBToSlices(BaseTransform):
    """Turn a loaded ``H x W x 3`` colour image into the 3-slice input of the MP3D FPN.

    Slice order: **R, G, B** (slice 0 = red, slice 1 = green, the centre/key slice, slice
    2 = blue). mmcv's ``LoadImageFromFile`` decodes images in **BGR** channel order (its
    ``channel_order`` is ``'bgr'`` for every decoding backend), so with the default
    ``input_order='bgr'`` slice 0 is input channel 2, slice 1 channel 1 and slice 2
    channel 0.

    Normalisation: none here -- the intensities are kept on their ``[0, 255]`` scale and
    cast to ``float32``, the same value range and dtype as the CT input that
    :class:`LoadCTSlices` produces for the DeepLesion configs (HU window mapped linearly
    to ``[0, 255]``). The detector's ``DetDataPreprocessor`` then applies ONE mean/std to
    every slice (``mean=[127.5], std=[127.5], bgr_to_rgb=False`` in
    ``configs/_base_/models/mp3d_fpn.py``), mapping both COCO and CT inputs to
    ``[-1, 1]``. One value for all slices (not per-channel ImageNet statistics) keeps the
    relative intensities of the slices, as for CT, where all slices share one scale.

    Place it right after ``LoadImageFromFile``; mmdet's geometric transforms (``Resize``,
    ``RandomFlip``, ``Pad``) treat the result as any 3-channel float image, and
    ``PackDetInputs`` packs it as a ``(3, H, W)`` tensor.

    Required keys: ``img`` (``H x W x 3``, ``uint8``, or a floating dtype already on the
    ``[0, 255]`` scale, e.g. from ``LoadImageFromFile(to_float32=True)``).
    Modified keys: ``img`` (``H x W x 3`` ``float32``, C-contiguous).
    Added keys: ``slice_order`` (``('R', 'G', 'B')``).

    Args:
        input_order: channel order of the incoming image, ``'bgr'`` (mmcv's loaders, the
            default) or ``'rgb'``.

    Raises:
        ValueError: ``img`` is not ``H x W x 3`` (e.g. a grey ``H x W`` image loaded with
            ``color_type='unchanged'`` or an ``H x W x 4`` image with alpha), or its dtype
            is neither ``uint8`` nor floating.
    """

    def __init__(self, input_order: str = 'bgr') -> None:
        if input_order not in INPUT_ORDERS:
            raise ValueError(f'RGBToSlices: input_order must be one of {INPUT_ORDERS}, '
                             f'got {input_order!r}')
        self.input_order = input_order

    def transform(self, results: dict) -> dict:
        """Reorder the channels to R, G, B slices and cast to float32 (see class doc)."""
        img = results['img']
        where = results.get('img_path', '<in-memory image>')
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            shape = img.shape if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(
                f'RGBToSlices: {where}: expected an H x W x 3 colour image, got {shape}; '
                "load COCO images with LoadImageFromFile(color_type='color') (the default)")
        if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
            raise ValueError(f'RGBToSlices: {where}: expected a uint8 (or [0, 255] float) '
                             f'image, got dtype {img.dtype}')
        if self.input_order == 'bgr':
            img = img[..., ::-1]
        results['img'] = np.ascontiguousarray(img, dtype=np.float32)
        results['slice_order'] = SLICE_ORDER
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(input_order={self.input_order!r})'
