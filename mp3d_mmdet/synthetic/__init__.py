"""A synthetic data set in the exact layout of the DeepLesion release, for the demo, the tests
and the quick check: :func:`make_synthetic_deeplesion` (``mp3d-make-synthetic-deeplesion``).

What is in it, module by module:

* :mod:`~.anatomy`: CT phantoms in HU -- body, fat, muscle, textured soft tissue, lungs,
  mediastinum, liver, kidneys, spine and ribs, all varying smoothly with z, plus noise.
* :mod:`~.placement`: lesions (3D ellipsoids with soft edges) and vessel-like confounders
  (tubes along z whose cross-section is drawn exactly like a lesion's, so only the 3D context
  tells them apart), placed within one organ or in generic soft tissue; the stored windows
  of slices around the key slices.
* :mod:`~.cohort`: patients, splits (70 / 15 / 15 %), the series mix (1 / 2.5 / 5 mm, one
  large series, second studies, two lesions on one key slice) and ``Possibly_noisy`` rows.
* :mod:`~.annotations`: the ``DL_info.csv`` rows (RECIST, boxes, types as in the release)
  and the 3D ground truth of every sub-volume in the format of the manual 3D test set.
* :mod:`~.layout`: the files written (``DL_info.csv``, ``Images_png/`` as 16-bit PNGs,
  ``lesions_3d.pkl``, ``synthetic_recipe.json``).
* :mod:`~.recipe`: the recipe file, written last, recording the arguments and a digest of
  this package's source, so that a complete folder of the wanted data can be recognised and
  reused (``mp3d-make-synthetic-deeplesion --reuse``).

Deterministic for a seed: the same arguments give byte-identical files.
"""
from .generator import make_synthetic_deeplesion, synthetic_recipe
from .layout import GENERATED_ENTRIES, LESIONS_3D_FILE
from .recipe import RECIPE_FILE, read_synthetic_recipe

__all__ = ['make_synthetic_deeplesion', 'synthetic_recipe', 'read_synthetic_recipe',
           'RECIPE_FILE', 'LESIONS_3D_FILE', 'GENERATED_ENTRIES']
