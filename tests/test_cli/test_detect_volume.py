"""mp3d-detect-volume: outputs of a run, and one-line errors (never a traceback) for bad
input, config, checkpoint or device."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from helpers.assertions import assert_one_line_error
from helpers.volume_fixtures import (REPO, make_sitk_image, phantom_volume, write_dicom_series,
                                     write_small_volume, write_tiny_model)
from mp3d_mmdet.cli import detect_volume
from mp3d_mmdet.volume import LESION_CSV_COLUMNS

SCRIPT = osp.join(REPO, 'tools', 'detect_volume.py')


@pytest.fixture(scope='module')
def cli():
    return detect_volume


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    """A tiny 3-slice config and a randomly initialised checkpoint of it."""
    return write_tiny_model(str(tmp_path_factory.mktemp('model')))


@pytest.fixture(scope='module')
def volume_path(tmp_path_factory):
    return write_small_volume(str(tmp_path_factory.mktemp('volume') / 'ct.nii.gz'))


def _run(cli, capsys, args):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_writes_json_csv_and_overlays(cli, capsys, tmp_path, model_files, volume_path):
    cfg, ckpt = model_files
    out = tmp_path / 'out'
    code, stdout, stderr = _run(cli, capsys, [
        volume_path, '--config', cfg, '--checkpoint', ckpt, '--out', str(out),
        '--score-thr', '0.0', '--batch-size', '3', '--top-k-overlays', '2', '--no-progress'])
    assert code == 0, stderr
    with open(out / 'detections.json') as handle:
        data = json.load(handle)
    # the random model fires everywhere at score >= 0: boxes, candidates, overlays exist
    assert data['model']['num_slices'] == 3 and data['model']['score_thr'] == 0.0
    assert data['model']['batch_size'] == 3 and data['model']['checkpoint'] == ckpt
    assert data['input']['num_slices'] == 8 and data['input']['format'] == 'nifti'
    assert data['linking'] == {'iou_thr': 0.3, 'max_gap': 1, 'min_slices': 1}
    assert data['inference']['num_slices_run'] == 8
    assert list(data['timings_s']) == ['read', 'assemble', 'pipeline', 'network', 'postprocess',
                                       'link']
    assert data['inference']['model_input_size'] == [64, 58]  # 40 x 36 px -> keep ratio 64
    assert len(data['detections']) > 0 and len(data['candidates']) > 0
    assert all(d['candidate_id'] is not None for d in data['detections'])
    assert sorted(c['id'] for c in data['candidates']) == list(
        range(1, len(data['candidates']) + 1))
    scores = [c['max_score'] for c in data['candidates']]
    assert scores == sorted(scores, reverse=True)
    lines = (out / 'lesions.csv').read_text().splitlines()
    assert lines[0] == ','.join(LESION_CSV_COLUMNS) and len(lines) == len(scores) + 1
    assert sorted(p.name for p in (out / 'overlays').glob('*.png')) == [
        'candidate_001.png', 'candidate_002.png']
    assert f"{len(data['candidates'])} lesion candidates" in stdout
    assert stderr.count('\n') <= 1  # only the (disabled) progress bar would write here
    # the viewer files that apply to a NIfTI input, by default
    for name in ('lesions.mrk.json', 'lesion_labels.nii.gz', 'lesion_labels.json',
                 'report.html'):
        assert (out / name).is_file(), name
    for name in ('lesions.mrk.json', 'lesion_labels.nii.gz', 'report.html'):
        assert str(out / name) in stdout, name
    assert not (out / 'lesions_sr.dcm').exists()
    labels = sitk.ReadImage(str(out / 'lesion_labels.nii.gz'))
    assert labels.GetSize() == sitk.ReadImage(volume_path).GetSize()
    markups = json.loads((out / 'lesions.mrk.json').read_text())['markups']
    assert len(markups) == len(data['candidates'])
    # --formats none: the core files only
    code, _, stderr = _run(cli, capsys, [
        volume_path, '--config', cfg, '--checkpoint', ckpt, '--out', str(tmp_path / 'core'),
        '--score-thr', '0.5', '--formats', 'none', '--no-progress'])
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / 'core').iterdir()) == [
        '.mp3d_outputs.json', 'detections.json', 'lesions.csv', 'overlays']


def test_reoriented_dicom_warns_and_records(cli, capsys, tmp_path, model_files):
    cfg, ckpt = model_files
    hu = phantom_volume((8, 36, 40), (4.0, 1.5, 1.5))  # sagittal storage: x is the slice axis
    image = make_sitk_image(hu, (4.0, 1.5, 1.5), (0.0, 0.0, 0.0),
                            (0, 0, 1, 1, 0, 0, 0, 1, 0))
    write_dicom_series(image, str(tmp_path / 'dicom'))
    code, _, stderr = _run(cli, capsys, [
        str(tmp_path / 'dicom'), '--config', cfg, '--checkpoint', ckpt, '--out',
        str(tmp_path / 'out'), '--score-thr', '0.99', '--no-progress'])
    assert code == 0, stderr
    assert 'warning: ' in stderr and 'reoriented from ' in stderr and ' to LPS' in stderr
    data = json.loads((tmp_path / 'out' / 'detections.json').read_text())
    assert data['input']['format'] == 'dicom' and data['input']['reoriented'] is True
    assert any('reoriented' in w for w in data['warnings'])


def test_bad_inputs_give_one_line_errors(cli, capsys, tmp_path, model_files, volume_path):
    cfg, ckpt = model_files
    base = ['--config', cfg, '--checkpoint', ckpt, '--out', str(tmp_path / 'out'),
            '--no-progress']
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    flat = str(tmp_path / 'flat.nii.gz')
    sitk.WriteImage(make_sitk_image(np.zeros((1, 16, 16)), (1.0, 1.0, 1.0)), flat)
    nopos = str(tmp_path / 'nopos')
    write_dicom_series(make_sitk_image(np.zeros((3, 16, 16)), (1.0, 1.0, 2.0)), nopos,
                       positions=False)
    cases = [
        (str(tmp_path / 'missing.nii.gz'), base, 'missing.nii.gz: no such file or directory'),
        (str(text), base, 'notes.txt: not an image SimpleITK can read'),
        (flat, base, 'flat.nii.gz: a 2D image (16 x 16); a 3D CT volume is needed'),
        (nopos, base, 'slice spacing missing (zero)'),
        (volume_path, ['--config', str(tmp_path / 'none.py')] + base[2:],
         'config file not found:'),
        (volume_path, base[:2] + ['--checkpoint', str(tmp_path / 'none.pth')] + base[4:],
         'checkpoint file not found:'),
        (volume_path, base + ['--device', 'gpu7'],
         "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu7'"),
        (volume_path, base + ['--formats', 'slicer,stl'],
         "--formats: unknown format(s) ['stl']; choose from slicer, nifti, dicom-sr, html"),
        (volume_path, base + ['--formats', 'dicom-sr'],
         '--formats: dicom-sr needs a DICOM series as input'),
    ]
    if not torch.cuda.is_available():
        cases.append((volume_path, base + ['--device', 'cuda'],
                      '--device cuda requested but CUDA is not available'))
    for path, args, pattern in cases:
        code, _, stderr = _run(cli, capsys, [path] + args)
        assert_one_line_error('mp3d-detect-volume', code, stderr, pattern)
    assert not (tmp_path / 'out').exists()


def test_bad_arguments_exit_2(cli, capsys, model_files, volume_path):
    cfg, ckpt = model_files
    with pytest.raises(SystemExit) as exit_info:
        cli.main([volume_path, '--config', cfg, '--checkpoint', ckpt, '--out', 'x',
                  '--batch-size', '0'])
    assert exit_info.value.code == 2
    assert '--batch-size must be >= 1' in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path, model_files):
    cfg, ckpt = model_files
    bad = tmp_path / 'bad.mha'
    bad.write_bytes(b'ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\n'
                    b'ElementDataFile = LOCAL\n' + bytes(128))
    proc = subprocess.run([sys.executable, SCRIPT, str(bad), '--config', cfg, '--checkpoint',
                           ckpt, '--out', str(tmp_path / 'out')], capture_output=True,
                          encoding='utf-8', errors='replace',
                          timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f'mp3d-detect-volume: error: {bad}: the MetaImage header has no ElementSpacing (voxel '
        'spacing missing)']


def test_test_scale_other_than_the_checkpoints_warns_until_set(cli, capsys, tmp_path,
                                                               model_files, volume_path):
    """The checkpoint records its config (mmengine's meta['cfg'] text) with a 96 px test
    scale; the config given tests at 64 px: a warning, gone with --cfg-options at 96 px."""
    import torch
    from mmengine.config import Config
    cfg, ckpt = model_files
    recorded = Config.fromfile(cfg)
    recorded.test_dataloader.dataset.pipeline[1].scale = (96, 96)
    trained = torch.load(ckpt, weights_only=False)
    trained['meta']['cfg'] = recorded.pretty_text
    torch.save(trained, tmp_path / 'trained96.pth')
    args = [volume_path, '--config', cfg, '--checkpoint', str(tmp_path / 'trained96.pth'),
            '--score-thr', '0.99', '--no-progress']
    code, _, stderr = _run(cli, capsys, args + ['--out', str(tmp_path / 'at64')])
    assert code == 0, stderr
    expected = (f'{tmp_path / "trained96.pth"} was trained and tested at scale (96, 96), the '
                f'config {cfg} tests at (64, 64)')
    assert f'mp3d-detect-volume: warning: {expected}' in stderr
    data = json.loads((tmp_path / 'at64' / 'detections.json').read_text())
    assert any(w.startswith(expected) for w in data['warnings'])
    assert data['inference']['model_input_size'] == [64, 58]

    code, _, stderr = _run(cli, capsys, args + [
        '--out', str(tmp_path / 'at96'), '--cfg-options',
        'test_dataloader.dataset.pipeline.1.scale=(96,96)'])
    assert code == 0, stderr
    assert 'warning' not in stderr
    data = json.loads((tmp_path / 'at96' / 'detections.json').read_text())
    assert data['warnings'] == [] and data['inference']['model_input_size'] == [96, 86]
