"""The phantom's anatomy in HU: air, body, fat, bone."""
import os.path as osp

import numpy as np

from mp3d_mmdet.datasets.transforms import read_uint16_png


def test_realistic_hu_background(generated):
    root, _, rows = generated
    row = rows[0]
    hu = read_uint16_png(osp.join(root, 'Images_png', row.series_folder,
                                  f'{row.key_slice_index:03d}.png')).astype(np.float64) - 32768
    assert np.median(hu[:3, :3]) < -950  # air in the corner
    size = row.image_size[0]
    centre = hu[size // 2 - 3:size // 2 + 3, size // 2 - 3:size // 2 + 3]
    assert -900 < np.median(centre) < 300  # inside the body (soft tissue, or lung)
    assert ((hu > -150) & (hu < -50)).mean() > 0.01  # subcutaneous fat
    # bone: vertebral bodies (a key slice may fall on an 80 HU disc, so look at all of them)
    assert max(
        read_uint16_png(osp.join(root, 'Images_png', r.series_folder,
                                 f'{r.key_slice_index:03d}.png')).max() - 32768
        for r in rows) > 400
