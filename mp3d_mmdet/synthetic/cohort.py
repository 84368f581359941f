"""The cohort of a synthetic set: its patients, their splits and series, and which lesion
rows are ``Possibly_noisy``.

* **Series mix**: slice intervals 1, 2.5 and 5 mm (every value used once there are >= 3
  series), ``image_size`` px, except one series of ``round(1.5 * image_size)`` px; some
  patients have a second study; one series carries two lesions on one key slice.
* **Splits** by patient: 70 / 15 / 15 % with at least one patient in each.
* **Possibly_noisy** rows: each with the given probability, at least one whenever possible
  (preferably in the test split), never all rows of a split.
"""
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .placement import Lesion, Series, make_series

__all__ = ['SLICE_INTERVALS_MM', 'Patient', 'Cohort', 'plan_cohort', 'mark_noisy']

#: The slice intervals of the series, in mm.
SLICE_INTERVALS_MM = (1.0, 2.5, 5.0)


@dataclass
class Patient:
    """``gender`` ('M' or 'F'), ``age`` in years and ``split`` (1 train, 2 val, 3 test)."""
    gender: str
    age: int
    split: int


@dataclass
class Cohort:
    """The patients by index (1-based), all series in order, and which one is the large
    series (index into ``series``) of ``large_size`` px."""
    patients: Dict[int, Patient]
    series: List[Series]
    large_series: int
    large_size: int

    def split_of(self, series: Series) -> int:
        """The split code of the series' patient."""
        return self.patients[series.patient].split

    def lesions(self) -> List[Tuple[Series, Lesion]]:
        """Every lesion with its series, series by series."""
        return [(series, lesion) for series in self.series for lesion in series.lesions]


def _split_codes(rng: np.random.Generator, num_patients: int) -> List[int]:
    """The split code of each patient (index 0 = patient 1)."""
    num_val = max(1, int(round(0.15 * num_patients)))
    num_test = max(1, int(round(0.15 * num_patients)))
    codes = [2] * num_val + [3] * num_test + [1] * (num_patients - num_val - num_test)
    return [codes[i] for i in rng.permutation(num_patients)]


def plan_cohort(rng: np.random.Generator, seed: int, num_patients: int, image_size: int,
                lesions_per_series: Tuple[int, int], lesion_diameter_mm: Tuple[float, float],
                vessels_per_series: Tuple[int, int],
                vessel_max_diameter_mm: Optional[float]) -> Cohort:
    """Draw the cohort: the splits and series layout from ``rng``, each series (and its
    patient's gender and age) from its own generator seeded ``[seed, patient, study]``.

    Args:
        rng: the set's random generator.
        seed: the set's seed.
        num_patients: patients, >= 3.
        image_size: width = height of the images in px.
        lesions_per_series: inclusive range of lesions per series.
        lesion_diameter_mm: range of the lesion long diameters.
        vessels_per_series: inclusive range of vessels per series.
        vessel_max_diameter_mm: cap of the vessel long diameters; None: as the lesions'.
    """
    splits = _split_codes(rng, num_patients)
    layout = [(p, st) for p in range(1, num_patients + 1)
              for st in range(1, (2 if rng.random() < 0.25 else 1) + 1)]
    intervals = np.tile(SLICE_INTERVALS_MM, len(layout) // 3 + 1)[:len(layout)]
    intervals = intervals[rng.permutation(len(layout))]
    large = int(rng.integers(len(layout)))
    multi = int(rng.integers(len(layout)))
    cohort = Cohort({}, [], large, int(round(1.5 * image_size)))
    for i, (patient, study) in enumerate(layout):
        series_rng = np.random.default_rng([seed, patient, study])
        if patient not in cohort.patients:
            cohort.patients[patient] = Patient('M' if series_rng.random() < 0.5 else 'F',
                                               int(series_rng.integers(20, 86)),
                                               splits[patient - 1])
        num_lesions = int(series_rng.integers(lesions_per_series[0], lesions_per_series[1] + 1))
        if i == multi:
            num_lesions = max(num_lesions, 2)
        cohort.series.append(
            make_series(series_rng, patient, study, 1,
                        cohort.large_size if i == large else image_size, float(intervals[i]),
                        num_lesions, i == multi, lesion_diameter_mm, vessels_per_series,
                        vessel_max_diameter_mm))
    return cohort


def mark_noisy(rng: np.random.Generator, cohort: Cohort, noisy_fraction: float) -> None:
    """Flag each lesion ``Possibly_noisy`` with probability ``noisy_fraction`` (drawn from
    ``rng``), then unflag the first lesion of a split whose lesions are all flagged and, if
    none is flagged, flag one (:func:`_flag_one`)."""
    lesions = cohort.lesions()
    for _, lesion in lesions:
        lesion.noisy = bool(rng.random() < noisy_fraction)
    for code in (1, 2, 3):  # every split keeps lesions after the noisy rows are excluded
        in_split = [les for s, les in lesions if cohort.split_of(s) == code]
        if in_split and all(les.noisy for les in in_split):
            in_split[0].noisy = False
    if not any(lesion.noisy for _, lesion in lesions):
        _flag_one(cohort, lesions)


def _flag_one(cohort: Cohort, lesions: List[Tuple[Series, Lesion]]) -> None:
    """Flag one lesion whose exclusion leaves its split non-empty: preferably one alone on
    its key slice, in the test split, in a split with other key slices (so that excluding it
    drops that image, not the split); none if there is no such lesion."""
    key_counts = Counter((s.folder, les.key_slice) for s, les in lesions)
    key_slices = {(cohort.split_of(s), s.folder, les.key_slice) for s, les in lesions}
    keys_per_split = Counter(code for code, _, _ in key_slices)
    candidates = sorted(
        ((s, les) for s, les in lesions
         if keys_per_split[cohort.split_of(s)] > 1 or key_counts[(s.folder, les.key_slice)] > 1),
        key=lambda sl: (key_counts[(sl[0].folder, sl[1].key_slice)] > 1,
                        cohort.split_of(sl[0]) != 3))
    if candidates:
        candidates[0][1].noisy = True
