"""The folder the generator writes: the release's ``DL_info.csv`` and ``Images_png/``, the 3D
ground truth and the recipe; and the writer of the stored slices as the release's PNGs::

    <out_dir>/DL_info.csv                                   all 18 official columns/formats
    <out_dir>/Images_png/<patient:06d>_<study:02d>_<series:02d>/<slice:03d>.png
                                                            uint16, value = HU + 32768
    <out_dir>/lesions_3d.pkl                                3D ground truth (LENS format)
    <out_dir>/synthetic_recipe.json                         written last
"""
import os
import os.path as osp
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from ..datasets.dl_info import slice_file_name
from ..datasets.slice_sampling import PNG_HU_OFFSET
from .placement import Series
from .recipe import RECIPE_FILE

__all__ = ['DL_INFO_FILE', 'IMAGES_DIR', 'LESIONS_3D_FILE', 'GENERATED_ENTRIES', 'write_slices']

#: The release's annotation file.
DL_INFO_FILE = 'DL_info.csv'
#: The release's image folder, one sub-folder per series.
IMAGES_DIR = 'Images_png'
#: The 3D ground truth of every sub-volume, in the format of the manual 3D test set.
LESIONS_3D_FILE = 'lesions_3d.pkl'
#: Everything the generator writes into its output folder.
GENERATED_ENTRIES = (DL_INFO_FILE, IMAGES_DIR, LESIONS_3D_FILE, RECIPE_FILE)


def write_slices(images_dir: str, all_series: Sequence[Series], seed: int,
                 progress: bool) -> int:
    """Render and write the stored slices of every series as 16-bit PNGs (HU + 32768,
    clipped to uint16), the noise of each slice drawn from a generator seeded
    ``[seed, patient, study, slice]``.

    Args:
        images_dir: the ``Images_png`` folder to create (must not exist).
        all_series: the series to write.
        seed: the set's seed.
        progress: show a tqdm progress bar over the files.

    Returns:
        The number of files written.

    Raises:
        OSError: a file could not be written.
    """
    jobs = [(series, index) for series in all_series for index in series.stored_slices()]
    os.makedirs(images_dir)
    for series in all_series:
        os.makedirs(osp.join(images_dir, series.folder))
    for series, index in tqdm(jobs, desc='synthetic DeepLesion slices', unit='png',
                              disable=not progress):
        noise_rng = np.random.default_rng([seed, series.patient, series.study, index])
        hu = series.phantom.render(series.z_of(index),
                                   series.vessels + [lesion.blob for lesion in series.lesions],
                                   noise_rng)
        values = np.clip(np.rint(hu) + PNG_HU_OFFSET, 0, 65535).astype(np.uint16)
        path = osp.join(images_dir, series.folder, slice_file_name(index))
        if not cv2.imwrite(path, values):
            raise OSError(f'could not write {path}')
    return len(jobs)
