"""The slices written as the release's PNGs."""
import os.path as osp

import cv2
import numpy as np


def test_png_files_are_16_bit_with_the_hu_offset(generated):
    root, _, rows = generated
    image = cv2.imread(osp.join(root, 'Images_png', rows[0].series_folder,
                                f'{rows[0].key_slice_index:03d}.png'), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and image.ndim == 2
    assert 32768 - 1100 < int(np.median(image)) < 32768 + 200
