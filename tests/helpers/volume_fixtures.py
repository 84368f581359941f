"""Synthetic CT volumes for the whole-volume inference tests, written with SimpleITK.

* :func:`phantom_volume` renders a ``(Z, Y, X)`` HU array: air (-1000 HU) around an
  elliptical body of soft tissue (``body_hu``, Gaussian noise) with bright ellipsoidal
  lesions (:class:`PlantedLesion`, soft edges) at known positions.
* :func:`lesion_box` is the expected box of a lesion on one axial slice.
* :func:`make_sitk_image` wraps an array with origin / spacing / direction (:func:`rotation`
  builds tilted directions);
  :func:`write_dicom_series` writes it as a CT DICOM series whose files store
  ``(HU - intercept) / slope`` with the rescale tags set (SimpleITK's GDCM writer inverts the
  rescale when writing, and applies it when reading).
* :func:`write_deeplesion_from_volumes` writes volumes as a DeepLesion-format set
  (``DL_info.csv`` + ``Images_png``), one annotated key slice per lesion and slice given, so a
  tiny detector can be trained through the real training loader.

Grid coordinates: a lesion centre is given in mm of the voxel grid, ``(x, y, z) = index *
spacing`` (voxel 0 at 0 mm, pixel centres at integer indices), independent of the origin and
direction that are attached when the volume is written.
"""
import math
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import SimpleITK as sitk

from helpers.tiny_mp3d import tiny_mp3d_model
from mp3d_mmdet.datasets.dl_info import (DLInfoRow, series_folder_name, slice_file_name,
                                         write_dl_info)
from mp3d_mmdet.datasets.slice_sampling import PNG_HU_OFFSET
from mp3d_mmdet.utils.config import load_config


@dataclass
class PlantedLesion:
    """An ellipsoid lesion: centre and semi-axes in grid mm, HU added to the tissue."""
    center_mm: Tuple[float, float, float]
    radii_mm: Tuple[float, float, float]
    contrast_hu: float = 220.0
    edge_mm: float = 1.0


def phantom_volume(size_xyz: Tuple[int, int, int],
                   spacing_xyz: Tuple[float, float, float],
                   lesions: Sequence[PlantedLesion] = (),
                   seed: int = 0,
                   body_hu: float = 40.0,
                   noise_hu: float = 10.0) -> np.ndarray:
    """Render a phantom CT volume.

    Args:
        size_xyz: ``(X, Y, Z)`` voxels.
        spacing_xyz: ``(sx, sy, sz)`` mm.
        lesions: lesions painted into the body.
        seed: noise seed.
        body_hu: tissue HU of the body ellipse (semi-axes 0.42 / 0.36 of the field of view).
        noise_hu: sigma of the Gaussian noise inside the body.

    Returns:
        float32 ``(Z, Y, X)`` HU.
    """
    nx, ny, nz = size_xyz
    sx, sy, sz = spacing_xyz
    xs = np.arange(nx, dtype=np.float32) * np.float32(sx)
    ys = np.arange(ny, dtype=np.float32) * np.float32(sy)
    zs = np.arange(nz, dtype=np.float32) * np.float32(sz)
    cx, cy = xs[-1] / 2, ys[-1] / 2
    body = (((xs[None, :] - cx) / (0.42 * nx * sx))**2 + ((ys[:, None] - cy) /
                                                          (0.36 * ny * sy))**2) < 1.0
    rng = np.random.default_rng(seed)
    volume = np.empty((nz, ny, nx), np.float32)
    for k in range(nz):
        tissue = body_hu + rng.standard_normal((ny, nx), dtype=np.float32) * np.float32(noise_hu)
        volume[k] = np.where(body, tissue, np.float32(-1000.0))
    for lesion in lesions:
        lx, ly, lz = lesion.center_mm
        ax, ay, az = lesion.radii_mm
        u = (xs[None, None, :] - lx) / ax
        v = (ys[None, :, None] - ly) / ay
        w = (zs[:, None, None] - lz) / az
        r = np.sqrt(u * u + v * v + w * w)
        alpha = np.clip((1.0 - r) * (min(ax, ay, az) / (2.0 * lesion.edge_mm)) + 0.5, 0.0, 1.0)
        volume += (alpha * np.float32(lesion.contrast_hu)).astype(np.float32)
    return volume


def lesion_box(lesion: PlantedLesion, spacing_xyz: Tuple[float, float, float], z_index: int,
               pad_px: float = 2.0) -> Optional[np.ndarray]:
    """The lesion's cross-section on axial slice ``z_index`` as a box, or None if absent.

    Returns:
        float64 ``[x1, y1, x2, y2]``: pixel indices (0-based, pixel centres at integers) of the
        half-contrast ellipse's extent, padded by ``pad_px``.
    """
    sx, sy, sz = spacing_xyz
    lx, ly, lz = lesion.center_mm
    ax, ay, az = lesion.radii_mm
    dz = (z_index * sz - lz) / az
    if abs(dz) >= 1.0:
        return None
    shrink = math.sqrt(1.0 - dz * dz)
    hx, hy = ax * shrink / sx, ay * shrink / sy
    return np.array([lx / sx - hx - pad_px, ly / sy - hy - pad_px, lx / sx + hx + pad_px,
                     ly / sy + hy + pad_px])


def rotation(axis: int, angle: float) -> np.ndarray:
    """The 3 x 3 rotation by ``angle`` radians about coordinate axis ``axis`` (0 x, 1 y, 2 z),
    for the direction cosines of tilted or oblique test series."""
    c, s = np.cos(angle), np.sin(angle)
    a, b = [i for i in range(3) if i != axis]
    matrix = np.eye(3)
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = c, -s, s, c
    return matrix


def make_sitk_image(hu: np.ndarray, spacing_xyz: Sequence[float],
                    origin: Sequence[float] = (0.0, 0.0, 0.0),
                    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
                    dtype: int = sitk.sitkInt16) -> sitk.Image:
    """``(Z, Y, X)`` HU array -> SimpleITK image (rounded to ``dtype``) with the geometry."""
    array = np.rint(hu) if dtype in (sitk.sitkInt16, sitk.sitkInt32) else hu
    image = sitk.Cast(sitk.GetImageFromArray(array.astype(np.float32)), dtype)
    image.SetSpacing([float(s) for s in spacing_xyz])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in direction])
    return image


def write_dicom_series(image: sitk.Image, folder: str, slope: float = 1.0,
                       intercept: float = -1024.0, pixel_spacing: bool = True,
                       positions: bool = True, series_number: int = 1,
                       extra_tags: Optional[Dict[str, str]] = None,
                       shear_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> List[str]:
    """Write a 3D int16 HU image as one CT DICOM file per slice (``folder/IM%04d.dcm``).

    Each file carries the study/series/instance UIDs (distinct), the frame of reference UID
    (``0020|0052``), ImagePositionPatient (``0020|0032``),
    ImageOrientationPatient (``0020|0037``), InstanceNumber, and RescaleIntercept/Slope
    (``0028|1052/1053``): the stored values are ``(HU - intercept) / slope``.
    ``pixel_spacing=False`` / ``positions=False`` leave PixelSpacing / the slice positions
    out (bad-input tests). ``series_number`` makes the series UID (and file names) distinct
    for several series in one folder. ``extra_tags`` (``'gggg|eeee' -> value``) are added to
    every file (e.g. patient name, window). ``shear_mm`` is added ``k`` times to slice ``k``'s
    ImagePositionPatient: a gantry-tilted series (its slices shifted in-plane one after the
    other) for a vector in the slice plane.

    Returns:
        the file paths, in slice order.
    """
    os.makedirs(folder, exist_ok=True)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    orientation = '\\'.join(f'{v:.8g}' for v in (*direction[:, 0], *direction[:, 1]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        position = np.add(image.TransformIndexToPhysicalPoint((0, 0, k)),
                          k * np.asarray(shear_mm, np.float64))
        tags = {
            '0008|0060': 'CT',
            '0008|0016': '1.2.840.10008.5.1.4.1.1.2',
            '0008|0018': f'1.2.826.0.1.3680043.2.1125.3.{series_number}.{k + 1}',
            '0020|000d': '1.2.826.0.1.3680043.2.1125.1',
            '0020|000e': f'1.2.826.0.1.3680043.2.1125.1.{series_number}',
            '0020|0052': '1.2.826.0.1.3680043.2.1125.2',
            '0020|0013': str(k + 1),
            '0020|0037': orientation,
            '0028|1052': f'{intercept:g}',
            '0028|1053': f'{slope:g}',
            '0028|1054': 'HU',
        }
        tags.update(extra_tags or {})
        if positions:
            tags['0020|0032'] = '\\'.join(f'{v:.8g}' for v in position)
        for tag, value in tags.items():
            slice_image.SetMetaData(tag, value)
        path = osp.join(folder, f'IM{k:04d}.dcm' if series_number == 1 else
                        f'S{series_number}IM{k:04d}.dcm')
        writer.SetFileName(path)
        writer.Execute(slice_image)
        paths.append(path)
    if not pixel_spacing:  # GDCM always writes PixelSpacing: blank the tag value in the file
        for path in paths:
            _blank_dicom_tag(path, b'\x28\x00\x30\x00')
    return paths


def _blank_dicom_tag(path: str, tag_bytes: bytes) -> None:
    """Renumber a tag of the dataset (little endian, GDCM writes implicit VR) to (0028,0031)
    (Zoom Factor, retired; the next number keeps the tag order valid) so readers miss it."""
    with open(path, 'rb') as handle:
        data = bytearray(handle.read())
    at = data.find(tag_bytes, 132 + 12)  # after the preamble and the meta header's length
    assert at > 0, f'tag {tag_bytes!r} not found in {path}'
    data[at:at + 4] = b'\x28\x00\x31\x00'
    with open(path, 'wb') as handle:
        handle.write(bytes(data))


def write_deeplesion_from_volumes(root: str,
                                  volumes: Sequence[Tuple[np.ndarray, Tuple[float, float, float],
                                                          Sequence[PlantedLesion]]],
                                  key_offsets: Sequence[int] = (0, ),
                                  pad_px: float = 2.0) -> int:
    """Write volumes as a DeepLesion-format training set (all rows in the train split).

    Every slice of every volume is stored as ``Images_png/<series>/<slice:03d>.png`` (1-based
    slice numbers, ``HU + 32768``); each lesion is annotated on the slice nearest its centre
    plus the slices ``key_offsets`` away from it (one csv row per lesion and key slice; a
    key slice with two lesions gets two rows).

    Args:
        root: output folder.
        volumes: ``(hu (Z, Y, X), spacing (sx, sy, sz), lesions)`` per series.
        key_offsets: slice offsets from each lesion's centre slice to annotate.
        pad_px: box padding (see :func:`lesion_box`).

    Returns:
        the number of csv rows written.
    """
    rows = []
    for series_index, (hu, spacing, lesions) in enumerate(volumes, start=1):
        folder = series_folder_name(series_index, 1, 1)
        os.makedirs(osp.join(root, 'Images_png', folder))
        depth, height, width = hu.shape
        for k in range(depth):
            values = np.clip(np.rint(hu[k]) + PNG_HU_OFFSET, 0, 65535).astype(np.uint16)
            assert cv2.imwrite(osp.join(root, 'Images_png', folder, slice_file_name(k + 1)),
                               values)
        for lesion in lesions:
            centre = int(round(lesion.center_mm[2] / spacing[2]))
            for offset in key_offsets:
                k = centre + offset
                box = lesion_box(lesion, spacing, k, pad_px)
                if box is None or not 0 <= k < depth:
                    continue
                box = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1]) + 1.0
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                long_px, short_px = box[2] - box[0] - 2 * pad_px, box[3] - box[1] - 2 * pad_px
                rows.append(DLInfoRow(
                    csv_row=0, file_name=f'{folder}_{k + 1:03d}.png', patient_index=series_index,
                    study_index=1, series_id=1, key_slice_index=k + 1,
                    measurement_coordinates=(box[0] + pad_px, cy, box[2] - pad_px, cy, cx,
                                             box[1] + pad_px, cx, box[3] - pad_px),
                    bounding_box=tuple(float(v) for v in box),
                    lesion_diameters_pixel=(max(long_px, short_px), min(long_px, short_px)),
                    normalized_lesion_location=(0.5, 0.5, 0.5), coarse_lesion_type=-1,
                    possibly_noisy=False, slice_range=(1, depth),
                    spacing_mm_px=tuple(float(s) for s in spacing), image_size=(width, height),
                    dicom_windows=((-175.0, 275.0), ), patient_gender='F', patient_age=50.0,
                    train_val_test=1))
    rows.sort(key=lambda row: row.file_name)
    write_dl_info(osp.join(root, 'DL_info.csv'), rows)
    return len(rows)


REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def tiny_config_text(data_root: str = 'data/none/', num_slices: int = 9,
                     slice_interval: float = 2.5, scale: int = 64, extra: str = '') -> str:
    """A tiny MP3D FPN config (8 base channels, 32-channel FPN, ``scale``-px test Resize)
    inheriting the demo config, with ``num_slices`` slices every ``slice_interval`` mm (the
    config's top-level settings: backbone, GTM and loaders follow them) and the paper's HU
    window (the phantoms' +400 HU lesions would saturate the demo's soft-tissue window).
    ``extra`` is appended (more config lines)."""
    small, large = scale * 7 // 8, scale * 9 // 8
    return f"""
_base_ = {osp.join(REPO, 'configs', 'mp3d_fpn_synthetic_demo.py')!r}
data_root = {data_root!r}
{tiny_mp3d_model(num_slices)}
slice_interval = {slice_interval}
hu_window = (-1024, 1050)
train_pipeline = _base_.train_pipeline
train_pipeline[2].scales = [({small}, {small}), ({scale}, {scale}), ({large}, {large})]
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = ({scale}, {scale})
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root, pipeline=test_pipeline))
""" + extra


def write_tiny_model(folder: str) -> Tuple[str, str]:
    """A tiny 3-slice config (:func:`tiny_config_text`, 64 px) and a checkpoint of its randomly
    initialised model (seed 0) in ``folder``; returns ``(config path, checkpoint path)``."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg_path = osp.join(folder, 'tiny3.py')
    with open(cfg_path, 'w') as handle:
        handle.write(tiny_config_text(num_slices=3, slice_interval=2.5, scale=64))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(load_config(cfg_path).model)
    model.init_weights()
    checkpoint = osp.join(folder, 'random.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': ('lesion', )}}}, checkpoint)
    return cfg_path, checkpoint


def write_small_volume(path: str) -> str:
    """An 8-slice 40 x 36 px NIfTI phantom (1.5 x 1.5 x 4 mm) with one lesion at ``path``."""
    hu = phantom_volume((40, 36, 8), (1.5, 1.5, 4.0), [PlantedLesion((30, 27, 14), (8, 7, 7))])
    sitk.WriteImage(make_sitk_image(hu, (1.5, 1.5, 4.0), (-30.0, 12.0, 400.0)), path)
    return path
