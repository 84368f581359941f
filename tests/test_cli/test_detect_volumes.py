"""mp3d-detect-volumes: a real (tiny, randomly initialised) model over DeepLesion sub-volumes
and over a list of volume files; Ctrl-C and resuming; one-line errors."""
import dataclasses
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

import mp3d_mmdet.volume
from helpers.assertions import assert_one_line_error
from helpers.deeplesion_files import make_row
from helpers.volume_fixtures import (PlantedLesion, make_sitk_image, phantom_volume,
                                     write_dicom_series, write_small_volume, write_tiny_model)
from mp3d_mmdet.cli import detect_volumes
from mp3d_mmdet.datasets.dl_info import write_dl_info
from mp3d_mmdet.datasets.slice_sampling import PNG_HU_OFFSET
from mp3d_mmdet.volume import (candidate_boxes_3d, detect_lesions_in_volume,
                               read_deeplesion_subvolume, read_volume_detections)

PROG = 'mp3d-detect-volumes'
SPACING = (1.5, 1.5, 4.0)


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    return write_tiny_model(str(tmp_path_factory.mktemp('model')))


@pytest.fixture(scope='module')
def deeplesion_root(tmp_path_factory):
    """Test series 000001_01_01 stores slices 1-6 and 9-12 of a phantom (a lesion around
    slice 4); train series 000002_01_01 stores slices 1-3."""
    root = str(tmp_path_factory.mktemp('deeplesion'))
    hu = phantom_volume((40, 36, 12), SPACING, [PlantedLesion((30, 27, 14), (8, 7, 7))])
    for series, numbers in (('000001_01_01', [1, 2, 3, 4, 5, 6, 9, 10, 11, 12]),
                            ('000002_01_01', [1, 2, 3])):
        folder = osp.join(root, 'Images_png', series)
        os.makedirs(folder)
        for n in numbers:
            values = np.clip(np.rint(hu[n - 1]) + PNG_HU_OFFSET, 0, 65535).astype(np.uint16)
            assert cv2.imwrite(osp.join(folder, f'{n:03d}.png'), values)
    rows = [make_row('000001_01_01', 4, SPACING, 3), make_row('000002_01_01', 2, SPACING, 1)]
    rows = [dataclasses.replace(row, image_size=(40, 36)) for row in rows]
    write_dl_info(osp.join(root, 'DL_info.csv'), rows)
    return root


def _run(capsys, args):
    code = detect_volumes.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_deeplesion_test_split_end_to_end_and_rerun(capsys, tmp_path, model_files,
                                                    deeplesion_root):
    cfg, ckpt = model_files
    out = tmp_path / 'out'
    args = ['--deeplesion', deeplesion_root, '--split', 'test', '--config', cfg,
            '--checkpoint', ckpt, '--out', str(out), '--score-thr', '0.0', '--no-progress']
    code, stdout, stderr = _run(capsys, args)
    assert code == 0, stderr
    assert '2 volume(s) detected, 0 already done, 0 unreadable' in stdout
    header, records = read_volume_detections(str(out / 'detections_3d.jsonl'))
    settings = header['settings']
    assert settings['config'] == osp.abspath(cfg) and settings['checkpoint'] == ckpt
    assert settings['score_thr'] == 0.0 and len(settings['checkpoint_sha256']) == 64
    assert list(records) == ['000001_01_01_001-006', '000001_01_01_009-012']
    first, second = records.values()
    assert (first['z_offset'], second['z_offset']) == (1, 9)
    assert first['shape_xyz'] == [40, 36, 6] and second['shape_xyz'] == [40, 36, 4]
    assert first['spacing_mm_xyz'] == list(SPACING)
    assert first['source'] == osp.join(deeplesion_root, 'Images_png', '000001_01_01')
    for record, depth in ((first, 6), (second, 4)):
        boxes = record['boxes']
        assert len(boxes) > 0  # the random model fires everywhere at score >= 0
        assert np.all(np.diff(boxes[:, 6]) <= 0)
        assert np.all(boxes[:, :3] <= boxes[:, 3:6])
        assert boxes[:, 2].min() >= 0 and boxes[:, 5].max() <= depth - 1

    # the same volume through the single-volume API gives the same 3D boxes
    result = detect_lesions_in_volume(read_deeplesion_subvolume('000001_01_01_009-012',
                                                                deeplesion_root),
                                      cfg, ckpt, score_thr=0.0, progress=False)
    expected = candidate_boxes_3d(result.candidates)
    np.testing.assert_allclose(second['boxes'], expected, atol=6e-4, rtol=0)

    before = (out / 'detections_3d.jsonl').read_bytes()
    code, stdout, stderr = _run(capsys, args)  # finished: nothing redone
    assert code == 0, stderr
    assert '0 volume(s) detected, 2 already done' in stdout
    assert (out / 'detections_3d.jsonl').read_bytes() == before


def test_ctrl_c_then_rerun_resumes(capsys, tmp_path, model_files, monkeypatch):
    cfg, ckpt = model_files
    paths = [write_small_volume(str(tmp_path / f'ct{i}.nii.gz')) for i in range(3)]
    listing = tmp_path / 'volumes.txt'
    listing.write_text('# three copies\n' + ''.join(f'{osp.basename(p)}\n' for p in paths))
    calls = []
    original = mp3d_mmdet.volume.volume_detect_function

    def counting(*args, **kwargs):
        detect = original(*args, **kwargs)

        def wrapped(volume):
            if interrupt_after is not None and len(calls) == interrupt_after:
                raise KeyboardInterrupt
            calls.append(volume.source_path)
            return detect(volume)
        return wrapped
    monkeypatch.setattr(mp3d_mmdet.volume, 'volume_detect_function', counting)
    out = tmp_path / 'out'
    args = ['--list', str(listing), '--config', cfg, '--checkpoint', ckpt, '--out', str(out),
            '--no-progress', '--score-thr', '0.3']
    interrupt_after = 1
    code, _, stderr = _run(capsys, args)
    assert code == 130 and calls == paths[:1]
    assert stderr.strip().endswith(f'{PROG}: interrupted; finished volumes are in {out}: '
                                   'rerun the same command to resume')
    interrupt_after = None
    code, stdout, stderr = _run(capsys, args)
    assert code == 0, stderr
    assert calls == paths  # ct0 not redone
    assert '2 volume(s) detected, 1 already done' in stdout
    _, records = read_volume_detections(str(out / 'detections_3d.jsonl'))
    assert list(records) == ['ct0', 'ct1', 'ct2']
    assert all(r['z_offset'] == 0 and r['shape_xyz'] == [40, 36, 8] for r in records.values())
    # identical volumes, identical results
    np.testing.assert_array_equal(records['ct0']['boxes'], records['ct2']['boxes'])

    # other settings: refused with one line, nothing changed; --restart starts again
    before = (out / 'detections_3d.jsonl').read_bytes()
    code, _, stderr = _run(capsys, args[:-1] + ['0.4'])
    assert_one_line_error(PROG, code, stderr, 'made with other settings (score_thr: 0.3 there, '
                          '0.4 now); pass --restart to start a new results file there')
    assert (out / 'detections_3d.jsonl').read_bytes() == before
    code, stdout, stderr = _run(capsys, args[:-1] + ['0.4', '--restart'])
    assert code == 0, stderr
    assert '3 volume(s) detected, 0 already done' in stdout
    header, _ = read_volume_detections(str(out / 'detections_3d.jsonl'))
    assert header['settings']['score_thr'] == 0.4


def test_bad_inputs_give_one_line_errors(capsys, tmp_path, model_files, deeplesion_root):
    cfg, ckpt = model_files
    base = ['--config', cfg, '--checkpoint', ckpt, '--out', str(tmp_path / 'out'),
            '--no-progress']
    for folder in ('a', 'b'):
        (tmp_path / folder).mkdir()
        write_small_volume(str(tmp_path / folder / 'ct.nii.gz'))
    twins = tmp_path / 'twins.txt'
    twins.write_text('a/ct.nii.gz\nb/ct.nii.gz\n')
    dicom = tmp_path / 'dicom'
    write_dicom_series(make_sitk_image(np.zeros((3, 16, 16)), (1.0, 1.0, 2.0)), str(dicom))
    flat = tmp_path / 'flat' / 'flat.nii.gz'
    flat.parent.mkdir()
    sitk.WriteImage(make_sitk_image(np.zeros((1, 16, 16)), (1.0, 1.0, 1.0)), str(flat))
    cases = [
        (['--list', str(tmp_path / 'none.txt')], 'volume list file not found: '),
        (['--list', str(twins)], "two volumes are named 'ct' ("),
        (['--folder', str(dicom)], 'it holds a DICOM series itself'),
        (['--folder', str(flat.parent)], 'flat.nii.gz: a 2D image (16 x 16)'),
        (['--deeplesion', str(tmp_path)], 'DeepLesion annotation file not found: '),
        (['--deeplesion', deeplesion_root, '--split', 'val'], 'no val sub-volume found'),
        (['--folder', str(tmp_path / 'a'), '--config', str(tmp_path / 'none.py')],
         'config file not found: '),
        (['--folder', str(tmp_path / 'a'), '--checkpoint', str(tmp_path / 'none.pth')],
         'checkpoint file not found: '),
        (['--folder', str(tmp_path / 'a'), '--device', 'gpu7'],
         "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu7'"),
    ]
    for extra, pattern in cases:
        code, _, stderr = _run(capsys, base + extra)
        assert_one_line_error(PROG, code, stderr, pattern)

    with pytest.raises(SystemExit) as exit_info:
        detect_volumes.main(base + ['--folder', str(tmp_path / 'a'), '--split', 'test'])
    assert exit_info.value.code == 2
    assert '--split needs --deeplesion' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        detect_volumes.main(base)
    assert exit_info.value.code == 2
    assert 'one of the arguments --list --folder --deeplesion is required' in \
        capsys.readouterr().err


def test_keep_going_skips_unreadable_volumes_and_exits_1(capsys, tmp_path, model_files):
    cfg, ckpt = model_files
    folder = tmp_path / 'scans'
    folder.mkdir()
    write_small_volume(str(folder / 'good.nii.gz'))
    (folder / 'bad.nii.gz').write_text('not a volume')
    code, stdout, stderr = _run(capsys, [
        '--folder', str(folder), '--config', cfg, '--checkpoint', ckpt, '--out',
        str(tmp_path / 'out'), '--no-progress', '--score-thr', '0.9', '--keep-going'])
    assert code == 1
    assert f'{PROG}: warning: bad: skipped, cannot be read: ' in stderr
    assert stderr.strip().splitlines()[-1].startswith(
        f'{PROG}: error: 1 of 2 volume(s) could not be read (e.g. bad)')
    assert '1 volume(s) detected, 0 already done, 1 unreadable' in stdout
    _, records = read_volume_detections(str(tmp_path / 'out' / 'detections_3d.jsonl'))
    assert list(records) == ['good']
    assert json.loads((tmp_path / 'out' / 'detections_3d.jsonl').read_text().splitlines()[1])[
        'name'] == 'good'


def test_viewer_files_per_volume_and_an_index_page(capsys, tmp_path, model_files,
                                                   deeplesion_root):
    cfg, ckpt = model_files
    out = tmp_path / 'out'
    base = ['--deeplesion', deeplesion_root, '--split', 'test', '--config', cfg,
            '--checkpoint', ckpt, '--out', str(out), '--score-thr', '0.3', '--no-progress']
    code, _, stderr = _run(capsys, base + ['--formats', 'dicom-sr'])
    assert code == 1 and stderr.count('\n') == 1
    assert 'dicom-sr needs a DICOM series as input' in stderr
    code, _, stderr = _run(capsys, base + ['--formats', 'slicer,nifti,html'])
    assert code == 0, stderr
    _, records = read_volume_detections(str(out / 'detections_3d.jsonl'))
    for name, record in records.items():
        folder = out / 'volumes' / name
        assert {'detections.json', 'lesions.csv', 'lesions.mrk.json', 'lesion_labels.nii.gz',
                'lesion_labels.json', 'report.html'} <= {p.name for p in folder.iterdir()}
        markups = json.loads((folder / 'lesions.mrk.json').read_text())['markups']
        assert len(markups) == len(record['boxes'])
    index = (out / 'index.html').read_text()
    for name in records:
        assert f'volumes/{name}/report.html' in index
