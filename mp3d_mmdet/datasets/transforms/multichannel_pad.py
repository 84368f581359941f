"""``Pad`` for images with any number of channels (mmdet's ``Pad`` breaks beyond 4).

mmdet's / mmcv's ``Pad`` pads with ``cv2.copyMakeBorder``, whose constant border value is a
4-element ``cv::Scalar``. Checked with mmcv 2.1 / OpenCV 4.11 (see
``tests/test_datasets/test_transforms/test_multichannel_augmentation.py``):

* more than 4 channels: an int ``pad_val`` -- including the default ``dict(img=0)`` -- is
  expanded to an N-tuple that OpenCV rejects (``cv2.error``), and a non-zero float fails an
  OpenCV assertion; only ``0.0`` works;
* 3 or 4 channels: a float ``pad_val`` fills only the first channel (the others get 0),
  silently.

:class:`MultiChannelPad` pads the image with ``numpy.pad`` instead (every channel gets
``pad_val['img']``) and keeps everything else of mmdet's ``Pad`` (sizes, ``size_divisor``,
``pad_to_square``, masks, segmentation maps, the ``pad_shape``/``img_shape`` bookkeeping).
"""
import numpy as np
from mmdet.datasets.transforms import Pad
from mmdet.registry import TRANSFORMS

__all__ = ['MultiChannelPad']


@TRANSFORMS.register_module()
class MultiChannelPad(Pad):
    """mmdet ``Pad`` that works for ``(H, W, N)`` images with any ``N``.

    Padding goes to the bottom and right, as in mmdet. Arguments are those of
    :class:`mmdet.datasets.transforms.Pad`; ``pad_val['img']`` must be one number.
    """

    def _pad_img(self, results: dict) -> None:
        """Pad ``results['img']`` to the target size (bottom/right)."""
        img = results['img']
        pad_val = self.pad_val.get('img', 0)
        if not isinstance(pad_val, (int, float)):
            raise TypeError(f"MultiChannelPad needs a single number as pad_val['img'], got "
                            f'{pad_val!r}')
        height, width = img.shape[:2]
        target_h, target_w = height, width
        if self.pad_to_square:
            target_h = target_w = max(height, width)
        if self.size_divisor is not None:
            target_h = int(np.ceil(target_h / self.size_divisor)) * self.size_divisor
            target_w = int(np.ceil(target_w / self.size_divisor)) * self.size_divisor
        elif self.size is not None:
            target_w, target_h = self.size
        pad_h, pad_w = max(target_h - height, 0), max(target_w - width, 0)
        widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (img.ndim - 2)
        # mmcv's padding modes (checked by Pad) are numpy's names with numpy's meaning
        if self.padding_mode == 'constant':
            padded = np.pad(img, widths, mode='constant', constant_values=pad_val)
        else:
            padded = np.pad(img, widths, mode=self.padding_mode)
        results['img'] = padded
        results['pad_shape'] = padded.shape
        results['pad_fixed_size'] = self.size
        results['pad_size_divisor'] = self.size_divisor
        results['img_shape'] = padded.shape[:2]
