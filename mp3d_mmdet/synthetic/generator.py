"""The generator's entry point: :func:`make_synthetic_deeplesion` checks its arguments, draws
the cohort, writes the folder (:mod:`~mp3d_mmdet.synthetic.layout`) and returns a summary;
:func:`synthetic_recipe` is what decides its bytes."""
import inspect
import json
import os.path as osp
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..datasets.dl_info import SPLIT_NAMES, DLInfoRow, write_dl_info
from ..datasets.lesions_3d import write_lens_annotations
from .annotations import dl_info_rows, lesions_3d
from .cohort import SLICE_INTERVALS_MM, Cohort, mark_noisy, plan_cohort
from .layout import GENERATED_ENTRIES, write_slices
from .recipe import generator_digest, write_recipe

__all__ = ['make_synthetic_deeplesion', 'synthetic_recipe']


def synthetic_recipe(**options: Any) -> Dict[str, Any]:
    """What decides the bytes :func:`make_synthetic_deeplesion` writes, as a JSON-ready dict.

    Args:
        **options: arguments of :func:`make_synthetic_deeplesion` (not ``out_dir`` or
            ``progress``); the others take its defaults.

    Returns:
        Every data argument (tuples as lists) plus ``generator_sha256``
        (:func:`~mp3d_mmdet.synthetic.recipe.generator_digest`): two folders with equal
        recipes hold the same data, and a changed generator makes an existing folder's recipe
        differ.

    Raises:
        TypeError: an unknown option.
    """
    bound = inspect.signature(make_synthetic_deeplesion).bind('', **options)
    bound.apply_defaults()
    recipe = {k: v for k, v in bound.arguments.items() if k not in ('out_dir', 'progress')}
    recipe['generator_sha256'] = generator_digest()
    return json.loads(json.dumps(recipe))  # the form it is stored in


def make_synthetic_deeplesion(out_dir: str,
                              num_patients: int = 12,
                              seed: int = 0,
                              image_size: int = 512,
                              lesions_per_series: Tuple[int, int] = (1, 3),
                              lesion_diameter_mm: Tuple[float, float] = (5.0, 40.0),
                              noisy_fraction: float = 0.06,
                              vessels_per_series: Tuple[int, int] = (3, 6),
                              vessel_max_diameter_mm: Optional[float] = None,
                              progress: bool = True) -> Dict[str, Any]:
    """Write a synthetic dataset in the DeepLesion layout (see :mod:`mp3d_mmdet.synthetic`).

    Args:
        out_dir: output folder (created; none of the generated entries may exist yet).
        num_patients: number of patients, >= 3 (one per split at least).
        seed: random seed; same arguments -> byte-identical output.
        image_size: width = height of the images in px (>= 32); one series uses
            ``round(1.5 * image_size)``.
        lesions_per_series: inclusive range of lesions per series.
        lesion_diameter_mm: range of the long diameters in mm.
        noisy_fraction: probability of a lesion row being ``Possibly_noisy``.
        vessels_per_series: inclusive range of vessels (confounders) per series; ``(0, 0)``
            for none. Vessels that stand in the way of a lesion are removed, so a series may
            hold fewer.
        vessel_max_diameter_mm: cap of the vessel long diameters, which are otherwise drawn
            exactly like the lesions' (None, the default). A cap below
            ``lesion_diameter_mm[1]`` leaves the largest blobs to the lesions, which tells a
            2D detector something.
        progress: show a tqdm progress bar over the slice files.

    The last file written is ``synthetic_recipe.json`` (:func:`synthetic_recipe`), so a folder
    holding it is complete.

    Returns:
        Summary with ``csv_path``, ``images_dir``, ``lesions_3d_path``, ``num_subvolumes``,
        ``num_patients``, ``num_series``, ``num_key_slices``, ``num_lesions``,
        ``num_noisy_rows``, ``num_vessels``, ``num_png_files``, ``splits``
        (``{'train'|'val'|'test': {'patients', 'key_slices', 'lesions', 'noisy_lesions'}}``),
        ``series_per_slice_interval`` (mm -> count), ``large_series`` (folder name) and
        ``large_image_size``, ``multi_lesion_key_slices`` (File_names).

    Raises:
        ValueError: an argument out of its range.
        FileExistsError: a generated entry exists in ``out_dir``.
    """
    _check_arguments(num_patients, image_size, lesions_per_series, lesion_diameter_mm,
                     noisy_fraction, vessels_per_series, vessel_max_diameter_mm)
    recipe = synthetic_recipe(
        num_patients=num_patients, seed=seed, image_size=image_size,
        lesions_per_series=lesions_per_series, lesion_diameter_mm=lesion_diameter_mm,
        noisy_fraction=noisy_fraction, vessels_per_series=vessels_per_series,
        vessel_max_diameter_mm=vessel_max_diameter_mm)
    csv_path, images_dir, lesions_3d_path, recipe_path = (osp.join(out_dir, name)
                                                          for name in GENERATED_ENTRIES)
    for path in (csv_path, images_dir, lesions_3d_path, recipe_path):
        if osp.exists(path):
            raise FileExistsError(f'{path} already exists; choose an empty output folder')

    rng = np.random.default_rng(seed)
    cohort = plan_cohort(rng, seed, num_patients, image_size, lesions_per_series,
                         lesion_diameter_mm, vessels_per_series, vessel_max_diameter_mm)
    mark_noisy(rng, cohort, noisy_fraction)
    rows = dl_info_rows(cohort)
    num_png_files = write_slices(images_dir, cohort.series, seed, progress)
    write_dl_info(csv_path, rows)
    boxes_3d = lesions_3d(cohort)
    write_lens_annotations(lesions_3d_path, boxes_3d)
    write_recipe(recipe_path, recipe)  # written last, whole: marks a complete set
    return dict(csv_path=csv_path, images_dir=images_dir, lesions_3d_path=lesions_3d_path,
                num_subvolumes=sum(len(volumes) for volumes in boxes_3d.values()),
                num_patients=num_patients, num_png_files=num_png_files,
                **_summary(cohort, rows))


def _check_arguments(num_patients: int, image_size: int, lesions_per_series: Tuple[int, int],
                     lesion_diameter_mm: Tuple[float, float], noisy_fraction: float,
                     vessels_per_series: Tuple[int, int],
                     vessel_max_diameter_mm: Optional[float]) -> None:
    """Raise ValueError naming the first argument of :func:`make_synthetic_deeplesion` out
    of its range."""
    if num_patients < 3:
        raise ValueError(f'num_patients must be >= 3 (train/val/test), got {num_patients}')
    if image_size < 32:
        raise ValueError(f'image_size must be >= 32 px, got {image_size}')
    if not 1 <= lesions_per_series[0] <= lesions_per_series[1]:
        raise ValueError(f'lesions_per_series must be (low, high) with 1 <= low <= high, '
                         f'got {lesions_per_series}')
    if not 0 < lesion_diameter_mm[0] <= lesion_diameter_mm[1]:
        raise ValueError(f'lesion_diameter_mm must be (low, high) with 0 < low <= high, got '
                         f'{lesion_diameter_mm}')
    if not 0.0 <= noisy_fraction <= 1.0:
        raise ValueError(f'noisy_fraction must be in [0, 1], got {noisy_fraction}')
    if not 0 <= vessels_per_series[0] <= vessels_per_series[1]:
        raise ValueError('vessels_per_series must be (low, high) with 0 <= low <= high, got '
                         f'{vessels_per_series}')
    if vessel_max_diameter_mm is not None and not vessel_max_diameter_mm > 0:
        raise ValueError(f'vessel_max_diameter_mm must be > 0, got {vessel_max_diameter_mm}')


def _summary(cohort: Cohort, rows: List[DLInfoRow]) -> Dict[str, Any]:
    """The counts of the summary that follow from the cohort and the csv rows."""
    key_counts = Counter(row.file_name for row in rows)
    splits = {}
    for code, name in SPLIT_NAMES.items():
        split_rows = [row for row in rows if row.train_val_test == code]
        splits[name] = dict(patients=len({row.patient_index for row in split_rows}),
                            key_slices=len({row.file_name for row in split_rows}),
                            lesions=len(split_rows),
                            noisy_lesions=sum(row.possibly_noisy for row in split_rows))
    return dict(
        num_series=len(cohort.series),
        num_key_slices=len(key_counts),
        num_lesions=len(rows),
        num_noisy_rows=sum(row.possibly_noisy for row in rows),
        num_vessels=sum(len(series.vessels) for series in cohort.series),
        splits=splits,
        series_per_slice_interval={
            interval: sum(series.interval == interval for series in cohort.series)
            for interval in SLICE_INTERVALS_MM
        },
        large_series=cohort.series[cohort.large_series].folder,
        large_image_size=cohort.large_size,
        multi_lesion_key_slices=sorted(name for name, count in key_counts.items() if count > 1))
