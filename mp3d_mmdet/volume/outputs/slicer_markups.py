"""3D Slicer markups: one ROI per lesion candidate, in a ``.mrk.json`` file Slicer opens.

The file follows Slicer's markups JSON schema (``markups-schema-v1.0.3``), one ``ROI``
markup per candidate in its ``markups`` list, in Slicer's **LPS** convention
(``"coordinateSystem": "LPS"``, millimetres; Slicer converts to its internal RAS when it
loads the file):

* ``center``: the physical centre of the candidate's 3D box (:mod:`.candidate_regions`);
* ``orientation``: the 3 x 3 matrix, row by row, whose columns are the box axes in LPS (the
  scan's axial-grid axes, so an oblique scan gets an oblique box);
* ``size``: the box's full edge lengths along those axes, in mm;
* ``controlPoints``: one point at the centre (Slicer draws a box ROI only from its control
  points: with none it sets the size to 0 and renders nothing, and its own ROI files carry
  one at the centre), labelled ``lesion <id>``, whose ``description`` (the one Slicer shows)
  gives the score and slices;
* ``name``: ``lesion <id>``; ``description``: score, slices and sizes.

Loading the scan and the file in Slicer shows the boxes on the lesions; the ROIs are locked
so that a click does not move them.
"""
import json
from typing import List, Optional

import numpy as np

from ...utils.safe_files import atomic_write
from .regions import CandidateRegion, candidate_regions
from ..inference.detection import VolumeDetectionResult

__all__ = ['SLICER_MARKUPS_SCHEMA', 'slicer_markups', 'write_slicer_markups']

#: The ``@schema`` of the files written (Slicer's markups JSON schema 1.0.3).
SLICER_MARKUPS_SCHEMA = ('https://raw.githubusercontent.com/slicer/slicer/master/Modules/'
                         'Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#')


def _roi(region: CandidateRegion) -> dict:
    description = (f'score {region.score:.3f} (mean {region.mean_score:.3f}); slices '
                   f'{region.first_slice}-{region.last_slice} (best {region.best_slice}); '
                   f'{region.long_axis_mm:.1f} x {region.short_axis_mm:.1f} mm in-plane')
    center = [round(float(v), 4) for v in region.center_lps_mm]
    point = {
        'id': '1', 'label': f'lesion {region.candidate_id}', 'description': description,
        'associatedNodeID': '', 'position': center,
        'orientation': [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],  # Slicer's: RAS axes
        'selected': True, 'locked': True, 'visibility': True, 'positionStatus': 'defined'}
    return {
        'type': 'ROI',
        'name': f'lesion {region.candidate_id}',
        'description': description,
        'coordinateSystem': 'LPS',
        'coordinateUnits': 'mm',
        'locked': True,
        'roiType': 'Box',
        'insideOut': False,
        'center': center,
        'orientation': [round(float(v), 8) for v in np.asarray(region.axes_lps).reshape(-1)],
        'size': [round(float(v), 4) for v in region.size_mm],
        'controlPoints': [point],
        'measurements': [],
        'display': {'visibility': True, 'propertiesLabelVisibility': True},
    }


def slicer_markups(regions: List[CandidateRegion]) -> dict:
    """The markups document of the regions (schema: module docstring).

    Args:
        regions: the candidates to mark, best first.

    Returns:
        JSON-ready ``{'@schema': ..., 'markups': [one ROI per region]}``.
    """
    return {'@schema': SLICER_MARKUPS_SCHEMA, 'markups': [_roi(r) for r in regions]}


def write_slicer_markups(result: VolumeDetectionResult, path: str,
                         regions: Optional[List[CandidateRegion]] = None) -> None:
    """Write the candidates of a detection result as 3D Slicer ROIs, whole or not at all.

    Args:
        result: the detection result.
        path: output file, conventionally ``*.mrk.json``.
        regions: the regions to write; default: every
            candidate (:func:`~mp3d_mmdet.volume.outputs.regions`).
    """
    regions = candidate_regions(result) if regions is None else regions
    with atomic_write(path) as handle:
        json.dump(slicer_markups(regions), handle, indent=2)
