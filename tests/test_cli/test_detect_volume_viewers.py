"""mp3d-detect-volume's viewer files as the clients read them: the DICOM SR of an axial CT
series hydrated by ``@cornerstonejs/adapters`` (OHIF) in Node, and a series whose SR cannot
be written (no FrameOfReferenceUID, stored sagittally): skipped with one warning line under
the default formats, refused before inference when ``dicom-sr`` is named."""
import json
import os

import pytest

from helpers.viewer_fixtures import hydrate_sr, node_or_skip
from helpers.volume_fixtures import make_sitk_image, phantom_volume, write_dicom_series
from mp3d_mmdet.cli import detect_volume

pydicom = pytest.importorskip('pydicom')
pytest.importorskip('highdicom', reason='highdicom not installed (DICOM SR output)')


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    from helpers.volume_fixtures import write_tiny_model
    return write_tiny_model(str(tmp_path_factory.mktemp('model')))


def _run(capsys, args):
    code = detect_volume.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sr_of_an_axial_series_hydrates_every_candidate(capsys, tmp_path, model_files):
    node = node_or_skip()
    cfg, ckpt = model_files
    folder = str(tmp_path / 'dicom')
    write_dicom_series(make_sitk_image(phantom_volume((40, 36, 6), (1.5, 1.5, 4.0)),
                                       (1.5, 1.5, 4.0), (-30.0, -27.0, 100.0)), folder)
    out = tmp_path / 'out'
    code, _, stderr = _run(capsys, [folder, '--config', cfg, '--checkpoint', ckpt, '--out',
                                    str(out), '--score-thr', '0.3', '--top-k-overlays', '0',
                                    '--no-progress'])
    assert code == 0, stderr
    candidates = json.loads((out / 'detections.json').read_text())['candidates']
    assert candidates
    hydrated = hydrate_sr(node, str(out / 'lesions_sr.dcm'), folder)
    assert hydrated['warnings'] == []
    assert {a['toolName'] for a in hydrated['annotations']} == {'RectangleROI'}
    per_candidate = {}
    for annotation in hydrated['annotations']:
        candidate = int(annotation['label'].split()[2])
        per_candidate[candidate] = per_candidate.get(candidate, 0) + 1
    # one rectangle per slice each candidate spans
    assert per_candidate == {c['id']: c['slice_range'][1] - c['slice_range'][0] + 1
                             for c in candidates}


def _sagittal_series_without_frame_of_reference(folder):
    hu = phantom_volume((8, 36, 40), (4.0, 1.5, 1.5))  # sagittal storage: x is the slice axis
    image = make_sitk_image(hu, (4.0, 1.5, 1.5), (0.0, 0.0, 0.0), (0, 0, 1, 1, 0, 0, 0, 1, 0))
    for path in write_dicom_series(image, folder):
        dataset = pydicom.dcmread(path)
        del dataset.FrameOfReferenceUID
        dataset.save_as(path)


def test_unwritable_sr_is_skipped_by_default_and_refused_when_named(capsys, tmp_path,
                                                                    model_files):
    cfg, ckpt = model_files
    folder = str(tmp_path / 'dicom')
    _sagittal_series_without_frame_of_reference(folder)
    base = [folder, '--config', cfg, '--checkpoint', ckpt, '--score-thr', '0.3',
            '--no-progress']
    out = tmp_path / 'out'
    code, stdout, stderr = _run(capsys, base + ['--out', str(out)])
    assert code == 0, stderr
    skipped = [line for line in stderr.splitlines() if 'no DICOM SR written' in line]
    assert skipped == [
        f'mp3d-detect-volume: warning: no DICOM SR written: {folder}: series '
        f'{json.loads((out / "detections.json").read_text())["input"]["dicom_series_uid"]} '
        'has no FrameOfReferenceUID (0020,0052) and is not stored as axial slices: the SR '
        'has neither 3D patient coordinates nor source images to draw on']
    assert sorted(os.listdir(out)) == [
        '.mp3d_outputs.json', 'detections.json', 'lesion_labels.ctbl', 'lesion_labels.json',
        'lesion_labels.nii.gz', 'lesion_labels_itksnap.txt', 'lesions.csv', 'lesions.mrk.json',
        'overlays', 'report.html']
    assert 'lesions_sr.dcm' not in stdout
    # named explicitly: a one-line error before inference, nothing written
    code, _, stderr = _run(capsys, base + ['--out', str(tmp_path / 'named'), '--formats',
                                           'slicer,dicom-sr'])
    assert code == 1
    *before, error = stderr.splitlines()
    assert [line for line in before if 'reoriented from' not in line] == [], stderr
    assert error.startswith('mp3d-detect-volume: error: dicom-sr cannot be written: ')
    assert 'Traceback' not in stderr
    assert not (tmp_path / 'named').exists() or not os.listdir(tmp_path / 'named')
