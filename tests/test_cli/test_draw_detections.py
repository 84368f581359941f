"""mp3d-draw-detections: overlays from a `mim test --out` pickle, and one-line errors."""
import cv2
import numpy as np
import pytest
from mmengine.fileio import dump

from helpers.froc_samples import data_sample, lesion
from mp3d_mmdet.cli import draw_detections
from mp3d_mmdet.datasets import PNG_HU_OFFSET
from mp3d_mmdet.visualization import draw_lesion_overlay

LESION, FAR = [20, 24, 35, 39], [2, 2, 8, 8]


def write_slice(path, value_hu=40):
    """A 64 x 64 DeepLesion slice PNG: ``value_hu`` tissue with a 200 HU block at LESION."""
    image = np.full((64, 64), value_hu + PNG_HU_OFFSET, np.uint16)
    image[LESION[1]:LESION[3] + 1, LESION[0]:LESION[2] + 1] = 200 + PNG_HU_OFFSET
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return str(path)


@pytest.fixture
def dump_file(tmp_path):
    """Three test images: ids 2 and 1 with a lesion (hit + false positive), 0 without."""
    samples = []
    for img_id in (2, 0, 1):
        png = write_slice(tmp_path / 'Images_png' / f'000{img_id}_01_01' / '011.png')
        instances = [lesion(LESION)] if img_id else []
        sample = data_sample(img_id, 1.0, instances, [LESION + [0.9], FAR + [0.4]]).to_dict()
        sample['img_path'] = png
        samples.append(sample)
    dump(samples, str(tmp_path / 'results.pkl'))
    return str(tmp_path / 'results.pkl')


def test_overlays_of_slices_with_ground_truth_in_id_order(dump_file, tmp_path, capsys):
    out = tmp_path / 'overlays'
    assert draw_detections.main([dump_file, '--out-dir', str(out), '--num', '5',
                                 '--upscale', '1', '--score-thr', '0.5']) == 0
    assert capsys.readouterr().out == f'mp3d-draw-detections: wrote 2 overlays to {out}\n'
    assert sorted(p.name for p in out.iterdir()) == ['0001_01_01_011.png', '0002_01_01_011.png']
    # the picture is the one draw_lesion_overlay makes from the slice and the record
    hu = np.full((64, 64), 40.0)
    hu[LESION[1]:LESION[3] + 1, LESION[0]:LESION[2] + 1] = 200.0
    expected = draw_lesion_overlay(hu, np.array([LESION], float), np.array([LESION, FAR], float),
                                   np.array([0.9, 0.4]), score_thr=0.5, upscale=1,
                                   title='Images_png/0001_01_01/011.png')
    np.testing.assert_array_equal(cv2.imread(str(out / '0001_01_01_011.png')), expected)
    assert draw_detections.main([dump_file, '--out-dir', str(out), '--num', '1']) == 0
    assert 'wrote 1 overlays' in capsys.readouterr().out


def test_errors_are_one_line_and_name_the_file(dump_file, tmp_path, capfd):
    """capfd: also what OpenCV would print on file descriptor 2."""
    missing = str(tmp_path / 'missing.pkl')
    assert draw_detections.main([missing, '--out-dir', str(tmp_path / 'o')]) == 1
    assert capfd.readouterr().err == (
        f'mp3d-draw-detections: error: prediction file not found: {missing}\n')
    png = tmp_path / 'Images_png' / '0001_01_01' / '011.png'
    png.unlink()
    assert draw_detections.main([dump_file, '--out-dir', str(tmp_path / 'o')]) == 1
    assert capfd.readouterr().err == (
        f'mp3d-draw-detections: error: CT slice file not found: {png}\n')
    png.write_bytes(b'not a png')
    assert draw_detections.main([dump_file, '--out-dir', str(tmp_path / 'o')]) == 1
    assert capfd.readouterr().err == (
        f'mp3d-draw-detections: error: cannot decode CT slice {png}: corrupt or not an image '
        'file\n')
