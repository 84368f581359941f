"""Batch volume detection: inputs, 3D candidate boxes, the JSON Lines results file, resuming
after an interruption without redoing finished volumes, refusing mixed settings, and the
reader's one-line errors. The per-volume detector is a counting stand-in here (the real model
runs in tests/test_cli/test_detect_volumes.py)."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from helpers.volume_fixtures import make_sitk_image, phantom_volume, write_dicom_series
from mp3d_mmdet.datasets.dl_info import write_dl_info
from mp3d_mmdet.volume import (RESULTS_FILE_NAME, VolumeInput, VolumeInputError, VolumeResultsFile,
                               candidate_boxes_3d, detect_volume_batch, link_slice_detections,
                               measure_lesion_candidates, read_ct_volume, read_volume_detections,
                               volume_inputs_from_deeplesion, volume_inputs_from_folder,
                               volume_inputs_from_list_file, volume_name_of_path, volume_record)

SETTINGS = {'config': '/models/tiny.py', 'checkpoint': '/models/tiny.pth', 'score_thr': 0.5,
            'iou_thr': 0.3, 'max_gap': 1, 'min_slices': 1}


def candidates_of(volume, shift=0.0):
    """Two linked candidates: one over slices 0-2 whose in-plane extent changes per slice
    (score 0.6 best), one on slice 1 only (score 0.9)."""
    depth = volume.num_slices
    boxes = [np.zeros((0, 4)) for _ in range(depth)]
    scores = [np.zeros((0, )) for _ in range(depth)]
    boxes[0] = np.array([[10.0, 11.0, 20.0, 21.0]]) + shift
    scores[0] = np.array([0.4])
    boxes[1] = np.array([[9.0, 12.0, 19.5, 22.0], [1.0, 1.0, 4.0, 4.0]]) + shift
    scores[1] = np.array([0.6, 0.9])
    boxes[2] = np.array([[11.0, 10.5, 21.0, 20.0]]) + shift
    scores[2] = np.array([0.5])
    tracks = link_slice_detections(boxes, scores, iou_thr=0.3, max_gap=1)
    return measure_lesion_candidates(tracks, volume.geometry)


class CountingDetect:
    """Stand-in per-volume detector: records the volumes it sees, can fail on call k."""

    def __init__(self, interrupt_at=None):
        self.calls = []
        self.interrupt_at = interrupt_at

    def __call__(self, volume):
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(volume.source_path)
        return SimpleNamespace(candidates=candidates_of(volume), warnings=['a note'])


def write_volume(path, depth=4, seed=0):
    hu = phantom_volume((24, 20, depth), (1.5, 1.5, 3.0), seed=seed)
    sitk.WriteImage(make_sitk_image(hu, (1.5, 1.5, 3.0)), path)
    return path


@pytest.fixture
def volumes(tmp_path):
    folder = tmp_path / 'scans'
    folder.mkdir()
    return [write_volume(str(folder / f'case{i}.nii.gz'), depth=3 + i, seed=i)
            for i in range(3)]


def run(inputs, out, detect, settings=SETTINGS, **kwargs):
    made = []

    def make_detect():
        made.append(True)
        return detect
    summary = detect_volume_batch(inputs, str(out), settings, make_detect, progress=False,
                                  **kwargs)
    return summary, made


def test_candidate_box_is_the_union_of_its_linked_boxes(volumes):
    volume = read_ct_volume(volumes[0])
    boxes = candidate_boxes_3d(candidates_of(volume))
    assert boxes.dtype == np.float64 and boxes.shape == (2, 7)
    np.testing.assert_allclose(boxes, [[1.0, 1.0, 1.0, 4.0, 4.0, 1.0, 0.9],
                                       [9.0, 10.5, 0.0, 21.0, 22.0, 2.0, 0.6]])
    assert candidate_boxes_3d([]).shape == (0, 7)
    item = VolumeInput(name='case0', source=volumes[0], z_offset=7)
    record = volume_record(item, volume, candidates_of(volume, shift=0.12345))
    assert list(record) == ['name', 'source', 'shape_xyz', 'spacing_mm_xyz', 'z_offset',
                            'boxes']
    assert record['shape_xyz'] == [24, 20, 3] and record['spacing_mm_xyz'] == [1.5, 1.5, 3.0]
    assert record['z_offset'] == 7
    assert record['boxes'][1] == [9.123, 10.623, 0, 21.123, 22.123, 2, 0.6]


def test_names_of_paths_lists_and_folders(tmp_path, volumes):
    assert volume_name_of_path('/data/case_01.nii.gz') == 'case_01'
    assert volume_name_of_path('/data/a.b.MHA') == 'a.b'
    assert volume_name_of_path('/data/scan.vtk') == 'scan'
    dicom = tmp_path / 'scans' / 'patient7'
    write_dicom_series(make_sitk_image(np.zeros((3, 16, 16)), (1.0, 1.0, 2.0)), str(dicom))
    assert volume_name_of_path(str(dicom) + '/') == 'patient7'

    (tmp_path / 'scans' / 'notes.txt').write_text('not a volume')
    (tmp_path / 'scans' / '.hidden.nii').write_text('hidden')
    (tmp_path / 'scans' / 'empty_dir').mkdir()
    with pytest.warns(UserWarning, match=r'skipped 1 sub-folder\(s\) holding no DICOM series '
                      r'\(empty_dir\)'):
        inputs = volume_inputs_from_folder(str(tmp_path / 'scans'))
    assert [(i.name, i.source, i.z_offset) for i in inputs] == [
        ('case0', volumes[0], 0), ('case1', volumes[1], 0), ('case2', volumes[2], 0),
        ('patient7', str(dicom), 0)]
    with pytest.raises(ValueError,
                       match=r'no volume found .*series\); it holds a DICOM series itself'):
        volume_inputs_from_folder(str(dicom))

    listing = tmp_path / 'list.txt'
    listing.write_text('# my cases\n\nscans/case2.nii.gz\n  scans/patient7  \n'
                       f'{volumes[0]}\n')
    inputs = volume_inputs_from_list_file(str(listing))
    assert [i.name for i in inputs] == ['case2', 'patient7', 'case0']
    assert inputs[0].source == volumes[2] and inputs[1].source == str(dicom)
    listing.write_text('scans/case2.nii.gz\n#\nscans/missing.nii.gz\n')
    with pytest.raises(FileNotFoundError) as info:
        volume_inputs_from_list_file(str(listing))
    assert str(info.value) == (f'{listing}: line 3: no such file or directory: '
                               f"{tmp_path / 'scans' / 'missing.nii.gz'}")
    listing.write_text('# nothing\n\n')
    with pytest.raises(ValueError, match='lists no volume'):
        volume_inputs_from_list_file(str(listing))


def test_deeplesion_inputs_carry_the_first_slice_as_z_offset(tmp_path):
    from helpers.deeplesion_files import make_row, write_slices
    write_dl_info(str(tmp_path / 'DL_info.csv'), [make_row('000005_02_03', 12, (0.8, 0.8, 2.0),
                                                           3)])
    write_slices(str(tmp_path), '000005_02_03', [11, 12, 13, 20, 21])
    inputs = volume_inputs_from_deeplesion(str(tmp_path), 'test')
    assert [(i.name, i.z_offset) for i in inputs] == [('000005_02_03_011-013', 11),
                                                      ('000005_02_03_020-021', 20)]
    assert inputs[1].source == str(tmp_path / 'Images_png' / '000005_02_03')
    assert inputs[1].read().hu.shape == (2, 6, 7)
    with pytest.raises(ValueError, match='no train sub-volume found'):
        volume_inputs_from_deeplesion(str(tmp_path), 'train')


def test_interrupted_run_resumes_without_redoing_finished_volumes(tmp_path, volumes):
    inputs = [VolumeInput(name=f'case{i}', source=p) for i, p in enumerate(volumes)]
    out = tmp_path / 'out'
    first = CountingDetect(interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, first)
    assert first.calls == [volumes[0]]
    header, records = read_volume_detections(str(out / RESULTS_FILE_NAME))
    assert header == {'format': 'mp3d-volume-detections-3d', 'format_version': 1,
                      'settings': SETTINGS}
    assert list(records) == ['case0']

    second = CountingDetect()
    summary, made = run(inputs, out, second)
    assert second.calls == volumes[1:]  # case0 is not redone
    assert summary.done == ['case1', 'case2'] and summary.skipped == ['case0']
    assert summary.warnings == ['a note', 'a note'] and made == [True]
    lines = (out / RESULTS_FILE_NAME).read_text().splitlines()
    assert len(lines) == 4 and [json.loads(line)['name'] for line in lines[1:]] == [
        'case0', 'case1', 'case2']
    _, records = read_volume_detections(str(out / RESULTS_FILE_NAME))
    assert records['case2']['shape_xyz'] == [24, 20, 5]
    assert records['case2']['boxes'].dtype == np.float64
    np.testing.assert_allclose(records['case2']['boxes'][:, 6], [0.9, 0.6])

    third = CountingDetect()  # everything done: the model is not even built
    summary, made = run(inputs, out, third)
    assert third.calls == [] and made == [] and summary.skipped == ['case0', 'case1', 'case2']
    assert (out / RESULTS_FILE_NAME).read_text().splitlines() == lines


def test_the_detectors_set_up_warnings_are_reported_once(tmp_path, volumes):
    inputs = [VolumeInput(name=f'case{i}', source=p) for i, p in enumerate(volumes)]
    detect = CountingDetect()
    reported = []

    def with_setup_note(volume):  # as volume_detect_function: the volume's and the set-up's
        result = detect(volume)
        result.warnings = result.warnings + ['emulated bf16']
        return result
    with_setup_note.setup_warnings = ['emulated bf16']
    summary, _ = run(inputs, tmp_path / 'out', with_setup_note, report=reported.append)
    assert summary.warnings == reported == ['emulated bf16', 'a note', 'a note', 'a note']


def test_a_truncated_last_line_is_dropped_and_redone(tmp_path, volumes):
    inputs = [VolumeInput(name=f'case{i}', source=p) for i, p in enumerate(volumes)]
    out = tmp_path / 'out'
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, CountingDetect(interrupt_at=2))
    path = out / RESULTS_FILE_NAME
    complete = path.read_bytes()
    volume = read_ct_volume(volumes[2])
    line = json.dumps(volume_record(inputs[2], volume, candidates_of(volume)))
    path.write_bytes(complete + line[:len(line) // 2].encode())  # killed while writing
    with pytest.raises(ValueError) as info:
        read_volume_detections(str(path))
    assert str(info.value).startswith(f'{path}: line 4: incomplete last line (not valid JSON')

    detect = CountingDetect()
    summary, _ = run(inputs, out, detect)
    assert detect.calls == [volumes[2]] and summary.done == ['case2']
    assert summary.warnings[0].startswith(f'{path}: dropped the incomplete last line 4 (')
    text = path.read_bytes()
    assert text.startswith(complete) and text.count(b'\n') == 4
    _, records = read_volume_detections(str(path))
    assert list(records) == ['case0', 'case1', 'case2']


def test_a_valid_last_line_without_its_newline_is_kept(tmp_path, volumes):
    inputs = [VolumeInput(name=f'case{i}', source=p) for i, p in enumerate(volumes)]
    out = tmp_path / 'out'
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, CountingDetect(interrupt_at=1))
    path = out / RESULTS_FILE_NAME
    path.write_bytes(path.read_bytes()[:-1])  # cut just before the final newline
    detect = CountingDetect()
    summary, _ = run(inputs, out, detect)
    assert detect.calls == volumes[1:] and summary.warnings == ['a note', 'a note']
    _, records = read_volume_detections(str(path))
    assert list(records) == ['case0', 'case1', 'case2']


def test_other_settings_are_refused_unless_restart(tmp_path, volumes):
    inputs = [VolumeInput(name=f'case{i}', source=p) for i, p in enumerate(volumes)]
    out = tmp_path / 'out'
    run(inputs[:2], out, CountingDetect())
    before = (out / RESULTS_FILE_NAME).read_bytes()
    other = dict(SETTINGS, score_thr=0.05)
    with pytest.raises(ValueError) as info:
        run(inputs, out, CountingDetect(), settings=other, restart_option='--restart')
    message = str(info.value)
    assert message == (f'{out / RESULTS_FILE_NAME} holds the results of 2 volume(s) made with '
                       'other settings (score_thr: 0.5 there, 0.05 now); pass --restart to '
                       'start a new results file there (discarding them), or choose another '
                       'output folder')
    assert (out / RESULTS_FILE_NAME).read_bytes() == before  # nothing touched

    detect = CountingDetect()
    summary, _ = run(inputs, out, detect, settings=other, restart=True)
    assert detect.calls == volumes and summary.skipped == []
    header, records = read_volume_detections(str(out / RESULTS_FILE_NAME))
    assert header['settings'] == other and list(records) == ['case0', 'case1', 'case2']


def test_same_name_from_another_source_and_duplicate_names_are_refused(tmp_path, volumes):
    out = tmp_path / 'out'
    run([VolumeInput(name='case0', source=volumes[0])], out, CountingDetect())
    with pytest.raises(ValueError, match=r"line 2: volume 'case0' was detected in .*case0"
                       r'.nii.gz, the input of that name now is .*case1.nii.gz'):
        run([VolumeInput(name='case0', source=volumes[1])], out, CountingDetect())
    twins = [VolumeInput(name='case', source=volumes[0]),
             VolumeInput(name='case', source=volumes[1])]
    with pytest.raises(ValueError, match="two volumes are named 'case'"):
        run(twins, tmp_path / 'other', CountingDetect())
    assert not (tmp_path / 'other').exists()


def test_unreadable_volume_stops_the_run_or_is_skipped_with_keep_going(tmp_path, volumes):
    broken = tmp_path / 'scans' / 'broken.nii.gz'
    broken.write_text('not a volume')
    inputs = [VolumeInput(name='case0', source=volumes[0]),
              VolumeInput(name='broken', source=str(broken)),
              VolumeInput(name='case1', source=volumes[1])]
    out = tmp_path / 'out'
    detect = CountingDetect()
    with pytest.raises(VolumeInputError, match='broken.nii.gz: not an image SimpleITK can '
                       'read'):
        run(inputs, out, detect)
    assert detect.calls == [volumes[0]]
    summary, _ = run(inputs, out, detect, keep_going=True)
    assert detect.calls == [volumes[0], volumes[1]]
    assert list(summary.failed) == ['broken'] and summary.done == ['case1']
    assert any(w.startswith('broken: skipped, cannot be read: ') for w in summary.warnings)
    _, records = read_volume_detections(str(out / RESULTS_FILE_NAME))
    assert list(records) == ['case0', 'case1']


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    with VolumeResultsFile(str(tmp_path / 'out'), SETTINGS):
        with pytest.raises(ValueError, match='is locked by another batch detection run'):
            VolumeResultsFile(str(tmp_path / 'out'), SETTINGS)
    with VolumeResultsFile(str(tmp_path / 'out'), SETTINGS) as results:  # released
        assert results.records == {}


def test_a_volume_whose_files_changed_is_detected_again(tmp_path, volumes):
    inputs = [VolumeInput(name=f'case{i}', source=p) for i, p in enumerate(volumes)]
    out = tmp_path / 'out'
    run(inputs, out, CountingDetect())
    path = out / RESULTS_FILE_NAME
    lines = path.read_text().splitlines()
    stamp = json.loads(lines[2])['input_stamp']
    assert stamp == inputs[1].stamp() and stamp['files'] == 1 and stamp['bytes'] > 0
    write_volume(volumes[1], depth=6, seed=9)  # replaced since: another size and time
    detect = CountingDetect()
    summary, _ = run(inputs, out, detect)
    assert detect.calls == [volumes[1]] and summary.done == ['case1']
    assert summary.skipped == ['case0', 'case2']
    assert summary.warnings[0].startswith(f'case1: {volumes[1]} changed since it was detected (')
    new_lines = path.read_text().splitlines()
    assert new_lines[:2] == lines[:2] and new_lines[3] == lines[3]  # in input order
    assert json.loads(new_lines[2])['shape_xyz'] == [24, 20, 6]
    assert json.loads(new_lines[2])['input_stamp'] == inputs[1].stamp()
    detect = CountingDetect()
    run(inputs, out, detect)
    assert detect.calls == []  # unchanged now: nothing redone


def test_the_file_ends_in_input_order_and_takes_in_leftover_part_files(tmp_path, volumes):
    from mp3d_mmdet.volume import part_file_name
    inputs = [VolumeInput(name=f'case{i}', source=p) for i, p in enumerate(volumes)]
    out = tmp_path / 'out'
    run([inputs[2], inputs[0]], out, CountingDetect())
    path = out / RESULTS_FILE_NAME
    assert [json.loads(line)['name'] for line in path.read_text().splitlines()[1:]] == [
        'case2', 'case0']
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, CountingDetect(interrupt_at=0))
    reference = tmp_path / 'reference'
    run(inputs, reference, CountingDetect())

    # a process of an interrupted distributed run left case1 (and half a line) in its part
    volume = read_ct_volume(volumes[1])
    record = volume_record(inputs[1], volume, candidates_of(volume), inputs[1].stamp())
    with VolumeResultsFile(str(out), SETTINGS, restart=True, file_name=part_file_name(3),
                           lock=False) as part:
        part.append(record)
    with open(out / part_file_name(3), 'a') as handle:
        handle.write('{"name": "case')
    detect = CountingDetect()
    summary, made = run(inputs, out, detect)
    assert detect.calls == [] and made == [] and summary.skipped == ['case0', 'case1', 'case2']
    assert summary.warnings == [f"{out / part_file_name(3)}: left out the incomplete last line "
                                '3 (a run interrupted while writing): its volume is done again']
    assert not (out / part_file_name(3)).exists()
    assert path.read_bytes() == (reference / RESULTS_FILE_NAME).read_bytes()

    with VolumeResultsFile(str(out), dict(SETTINGS, score_thr=0.1), restart=True,
                           file_name=part_file_name(0), lock=False):
        pass
    with pytest.raises(ValueError, match=r'detections_3d.part-0.jsonl holds 0 volume\(s\) of an '
                       'interrupted run with other settings than .*; pass restart=True'):
        run(inputs, out, CountingDetect())
    run(inputs, out, CountingDetect(), restart=True)
    assert not (out / part_file_name(0)).exists()


def test_prefetched_reads_ahead_in_order_bounded_and_hands_over_read_errors():
    from mp3d_mmdet.volume import prefetched
    started = []

    def read(k):
        started.append(k)
        if k == 2:
            raise OSError(f'cannot read {k}')
        return k * 10

    seen = []
    for item, value, error in prefetched(range(5), read, ahead=1):
        assert len(started) <= item + 2  # the one in work and at most one read ahead
        seen.append((item, value, None if error is None else str(error)))
    assert seen == [(0, 0, None), (1, 10, None), (2, None, 'cannot read 2'), (3, 30, None),
                    (4, 40, None)]
    assert list(prefetched(range(3), lambda k: -k, ahead=0)) == [
        (0, 0, None), (1, -1, None), (2, -2, None)]

    def broken(k):
        raise RuntimeError('a bug')
    with pytest.raises(RuntimeError, match='a bug'):
        list(prefetched(range(3), broken, ahead=2))
