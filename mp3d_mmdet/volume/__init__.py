"""Whole-volume lesion detection: CT volumes in, linked 3D lesion candidates and viewer files out.

Layered one way, each layer importing only those before it:

==================  ===========================================================================
``io``              CT volumes read onto an axial grid: files, DICOM series, DeepLesion
                    sub-volumes (:class:`CTVolume`, :func:`read_ct_volume`)
``inference``       the detector over every axial slice, and slice boxes linked into 3D lesion
                    candidates (:class:`VolumeLesionDetector`, :func:`detect_lesions_in_volume`)
``outputs``         ``detections.json``, ``lesions.csv``, overlays, 3D Slicer markups, a NIfTI
                    label map, a DICOM SR, an HTML report (:func:`write_volume_outputs`)
``inputs``,         many volumes: their inputs (list, folder, DeepLesion), one resumable
``results_file``,   results file, reading ahead, processes sharing a batch (torchrun, Slurm),
``prefetch``,       the batch loop (:func:`detect_volume_batch`)
``distributed``,
``batch``
==================  ===========================================================================

The few entry points most users need are re-exported by :mod:`mp3d_mmdet.apis`.
"""
from . import batch, distributed, inference, inputs, io, outputs, prefetch, results_file
from .batch import *  # noqa: F401,F403
from .distributed import *  # noqa: F401,F403
from .inference import *  # noqa: F401,F403
from .inputs import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .outputs import *  # noqa: F401,F403
from .prefetch import *  # noqa: F401,F403
from .results_file import *  # noqa: F401,F403

__all__ = (io.__all__ + inference.__all__ + outputs.__all__ + inputs.__all__
           + results_file.__all__ + prefetch.__all__ + distributed.__all__ + batch.__all__)
