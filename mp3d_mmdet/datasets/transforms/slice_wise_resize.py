"""mmdet ``Resize`` that resizes an N-slice image slice by slice and keeps it channel-planar.

:class:`~mp3d_mmdet.datasets.transforms.LoadCTSlices` returns its ``(H, W, N)`` image as a view
of a C-contiguous ``(N, H, W)`` array
(:func:`~mp3d_mmdet.datasets.slice_sampling.is_channel_planar`). mmdet's ``Resize``
hands that view to ``cv2.resize``, which first copies it into interleaved ``(H, W, N)`` order
and returns an interleaved image, which ``PackDetInputs`` must transpose back into an
``(N, H, W)`` tensor: two full copies per sample that do nothing but move channels around.
:class:`SliceWiseResize` resizes each ``(H, W)`` plane with ``cv2.resize`` into a new
``(N, h, w)`` array instead (and returns the image itself when the size does not change,
which ``cv2.resize`` would only copy). mmdet's ``RandomFlip`` then returns a flipped numpy
view, and ``PackDetInputs`` gets its ``(N, h, w)`` tensor from ``transpose(2, 0, 1)`` without
a copy (unflipped) or with one plane-wise copy (flipped) -- never a channel transpose.
``tools/benchmark/loader_speed.py`` measures the effect on a whole training sample.

Everything else -- the target size and ``scale_factor`` (``keep_ratio`` via
``mmcv.rescale_size``), boxes, masks, segmentation maps, the ``img_shape`` bookkeeping -- is
mmdet's ``Resize``; an image that is not channel-planar (e.g. a 3-channel RGB image), or
whose dtype is not one of OpenCV's (uint8, uint16, int16, float32, float64), goes through
mmdet's own code unchanged. Per-plane and interleaved ``cv2.resize`` give the same values up
to float rounding (OpenCV's 1-channel and N-channel kernels differ in the last bits). One
difference remains: with ``interpolation='area'``, mmdet's ``Resize`` fails on more than 4
channels when shrinking by a non-integer factor (an OpenCV limit); the per-plane resize works.
"""
import cv2
import numpy as np
from mmcv.image import rescale_size
from mmcv.image.geometric import cv2_interp_codes
from mmdet.datasets.transforms import Resize
from mmdet.registry import TRANSFORMS

from ..slice_sampling import is_channel_planar

__all__ = ['SliceWiseResize']

# dtypes cv2.resize handles in every interpolation mode (others go through mmdet's Resize)
_CV2_RESIZE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16),
                      np.dtype(np.float32), np.dtype(np.float64))


@TRANSFORMS.register_module()
class SliceWiseResize(Resize):
    """mmdet ``Resize`` that resizes channel-planar ``(H, W, N)`` images plane by plane.

    Use it wherever mmdet's ``Resize`` would follow ``LoadCTSlices``, including as
    ``RandomChoiceResize(resize_type='SliceWiseResize')``. Arguments, required and modified
    keys are those of :class:`mmdet.datasets.transforms.Resize`.

    Input ``img``: ``(H, W, N)`` of any dtype mmdet's ``Resize`` takes. Output ``img``:
    ``(h, w, N)`` with ``(w, h)`` = mmdet's target size; channel-planar if the input was (the
    input itself when ``(h, w) == (H, W)``), mmdet's interleaved result otherwise.
    """

    def _resize_img(self, results: dict) -> None:
        """Resize ``results['img']`` to ``results['scale']`` (see the class docstring)."""
        img = results.get('img', None)
        if (img is None or self.backend == 'pillow' or img.dtype not in _CV2_RESIZE_DTYPES
                or not is_channel_planar(img)):
            super()._resize_img(results)
            return
        height, width = img.shape[:2]
        if self.keep_ratio:
            new_w, new_h = rescale_size((width, height), results['scale'])
        else:
            new_w, new_h = results['scale']
        if (new_w, new_h) != (width, height):
            planes = img.transpose(2, 0, 1)
            resized = np.empty((planes.shape[0], new_h, new_w), img.dtype)
            for plane, out in zip(planes, resized):
                cv2.resize(plane, (new_w, new_h), dst=out,
                           interpolation=cv2_interp_codes[self.interpolation])
            img = resized.transpose(1, 2, 0)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['scale_factor'] = (new_w / width, new_h / height)
        results['keep_ratio'] = self.keep_ratio
