"""A detection result on an oblique, permuted and flipped scan with a non-trivial origin, for
the writers of viewer files (regions, Slicer markups, label maps); the DICOM SR read as OHIF
reads it (Node and ``tools/viewer_checks``)."""
import json
import math
import os.path as osp
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from helpers.volume_fixtures import REPO, make_sitk_image
from mp3d_mmdet.volume import (SliceDetections, VolumeDetectionResult, link_slice_detections,
                               measure_lesion_candidates, read_ct_volume)

#: stored axes: file i runs along physical -y, j along +x, k along +z, all turned 8 degrees
#: about z (an oblique scan), read back reoriented (axes permuted and flipped)
ANGLE = math.radians(8.0)
_ROT = np.array([[math.cos(ANGLE), -math.sin(ANGLE), 0.0],
                 [math.sin(ANGLE), math.cos(ANGLE), 0.0], [0.0, 0.0, 1.0]])
_PERMUTED = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
DIRECTION = tuple((_ROT @ _PERMUTED).reshape(-1))
SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-120.5, 85.25, -310.0)


def oblique_result(folder: str) -> VolumeDetectionResult:
    """Two candidates on a 40 x 30 x 9 scan (stored size; axial grid 30 x 40 x 9 after the
    permutation): one over slices 2-4 (a bridged gap on slice 3), one on slice 6."""
    hu = np.full((9, 30, 40), 40, np.int16)  # (k, j, i) of the file
    path = f'{folder}/oblique.nii.gz'
    sitk.WriteImage(make_sitk_image(hu, SPACING, ORIGIN, DIRECTION), path)
    volume = read_ct_volume(path)
    assert volume.reoriented
    depth, height, width = volume.hu.shape
    boxes = [np.zeros((0, 4), np.float32) for _ in range(depth)]
    scores = [np.zeros(0, np.float32) for _ in range(depth)]
    boxes[2] = np.array([[5.5, 8.0, 14.5, 20.0]], np.float32)
    scores[2] = np.array([0.9], np.float32)
    boxes[4] = np.array([[6.0, 9.0, 15.0, 21.0]], np.float32)
    scores[4] = np.array([0.8], np.float32)
    boxes[6] = np.array([[20.0, 25.0, 27.0, 33.0]], np.float32)
    scores[6] = np.array([0.6], np.float32)
    detections = SliceDetections(boxes, scores, list(range(depth)), 0.5, 'rule',
                                 (width, height), SPACING[:2], 4, {})
    candidates = measure_lesion_candidates(
        link_slice_detections(boxes, scores, iou_thr=0.3, max_gap=1),
        volume.geometry, volume.original_geometry)
    assert len(candidates) == 2
    return VolumeDetectionResult(volume=volume, detections=detections, candidates=candidates,
                                 linking=dict(iou_thr=0.3, max_gap=1, min_slices=1),
                                 model=dict(config='cfg.py', checkpoint='ckpt.pth'))


def expected_original_corners(result: VolumeDetectionResult, box_index: np.ndarray
                              ) -> np.ndarray:
    """``(8, 3)`` corners of an axial-grid box as continuous indices of the file's grid."""
    lo, hi = box_index[:3], box_index[3:]
    bits = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)
    return result.volume.to_original_index(np.where(bits, hi, lo))


#: The Node checks of the viewer files (package.json, package-lock.json, hydrate_sr.mjs).
VIEWER_CHECKS = osp.join(REPO, 'tools', 'viewer_checks')


def node_or_skip() -> str:
    """The Node.js executable, skipping the test (with the reason) where Node or the pinned
    packages of :data:`VIEWER_CHECKS` cannot be had."""
    node = shutil.which('node') or shutil.which('nodejs')
    if node is None:
        pytest.skip('Node.js not installed (tools/setup_env.sh installs Debian nodejs)')
    if not osp.isdir(osp.join(VIEWER_CHECKS, 'node_modules', '@cornerstonejs', 'adapters')):
        pytest.skip('tools/viewer_checks/node_modules missing: run tools/setup_env.sh '
                    '(npm ci there)')
    return node


def hydrate_sr(node: str, sr_path: str, series_folder: str) -> dict:
    """What ``@cornerstonejs/adapters`` (OHIF) hydrate from an SR: ``hydrate_sr.mjs``'s JSON,
    ``{'annotations': [{toolName, sopInstanceUID, referencedImageId, label, points}],
    'warnings': [...]}``."""
    run = subprocess.run([node, osp.join(VIEWER_CHECKS, 'hydrate_sr.mjs'), sr_path,
                          series_folder], capture_output=True, encoding='utf-8',
                         errors='replace', timeout=120, cwd=VIEWER_CHECKS)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)
