"""The fault table of issue #13, replayed end to end through the entry points a user calls.

Each row once gave a crash, a hang, silent corruption, lost files or ran code; each test
below feeds the same input to the same entry point and asserts the one-line error (or the
correct handling) and that nothing was overwritten, truncated or executed:

====  ===================================================================================
row   case
====  ===================================================================================
1     NIfTI volume with NaN/Inf voxels (ITK's reader turns NaN into 0)
2     the pre-training converter's DST reaching SRC through a symlinked folder
3     SIGKILL while a checkpoint is written, demo config (max_keep_ckpts=1), then --resume
4     mp3d-detect-volume on a full disk, an earlier run's results in --out
5     mp3d-detect-volume re-run into the same --out (stale overlays)
6     mp3d-detect-volume --out an existing file or unwritable: refused before inference
7     mp3d-eval-froc on a pickle that runs code
8     DL_info.csv Image_size contradicting the PNG's real size
9     zero-size box in the csv
10    csv slice interval 1e-6 mm (the loader used to hang)
11    duplicate csv row; Patient_index contradicting File_name
12    non-UTF-8 csv
13    checkpoint that is a text file / zero bytes / not a detector
14    absurd spacings (z 1e9 mm, xy 1e-4 mm) in csv or volume
====  ===================================================================================

The rows of issue #26 (``test_i26_row<N>_...``), same entry points:

====  ===================================================================================
row   case
====  ===================================================================================
1     official JSON listing one lesion twice (a new annotation id, same image and box)
2     two image records of one PNG in an official JSON
3     mp3d-eval-volumes on results with z_offset 0 for volumes named after sub-volumes
5     a box that is positive in float64 but vanishes in float32 (JSON and csv)
7     LENS boxes outside their sub-volume's image
8     --fps repeating a rate (both eval CLIs); protocol-0/1 LENS pickles taken for a csv
9     protocol 'mp3d' scoring a clipped box instead of the file's
14    deeply nested JSON (annotations, FROC records, the volume results file); FROC records
      without a list of images; predictions with instances=5 or pred_instances=None
====  ===================================================================================
"""
import dataclasses
import importlib
import json
import os
import os.path as osp
import signal

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from mmengine.config import Config
from mmengine.fileio import dump

from helpers.assertions import assert_one_line_error
from helpers.froc_samples import data_sample, lesion
from helpers.toy_runner import toy_runner, train_and_sigkill_while_writing
from helpers.volume_fixtures import (REPO, make_sitk_image, phantom_volume, write_small_volume,
                                     write_tiny_model)
from mp3d_mmdet.datasets import DeepLesionDataset
from mp3d_mmdet.datasets.dl_info import write_dl_info
from mp3d_mmdet.utils.checkpoint_files import CheckpointFileError
from test_datasets.test_deeplesion import make_row, write_dataset

DETECT = 'mp3d-detect-volume'


def _tool(name):
    """The command-line tool ``mp3d-<name>`` (its module in :mod:`mp3d_mmdet.cli`)."""
    return importlib.import_module(f'mp3d_mmdet.cli.{name}')


def _files(folder):
    """Every file under ``folder`` with its bytes (hidden ones included)."""
    return {osp.relpath(osp.join(root, name), folder): open(osp.join(root, name), 'rb').read()
            for root, _, names in os.walk(folder) for name in names}


class _RunsCode:
    """Pickles as a call of os.system that leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


# ---------------------------------------------------------------- mp3d-detect-volume rows
@pytest.fixture(scope='module')
def detect(tmp_path_factory):
    """(run(args) -> (exit code, stderr), config, checkpoint, volume) for mp3d-detect-volume."""
    root = tmp_path_factory.mktemp('detect')
    cfg, ckpt = write_tiny_model(str(root))
    volume = write_small_volume(str(root / 'ct.nii.gz'))
    cli = _tool('detect_volume')

    def run(args, capsys):
        code = cli.main([str(a) for a in args] + ['--no-progress'])
        return code, capsys.readouterr().err

    return run, cfg, ckpt, volume


@pytest.mark.parametrize('suffix', ['.nii', '.nii.gz'])
def test_row1_nifti_with_nan_voxels(detect, capsys, tmp_path, suffix):
    import nibabel
    run, cfg, ckpt, _ = detect
    hu = phantom_volume((40, 36, 8), (1.5, 1.5, 4.0))
    hu[2:4, 10:20, 10:20] = np.nan  # a NaN block, once reported as a lesion
    path = tmp_path / f'nan{suffix}'
    nibabel.save(nibabel.Nifti1Image(hu.astype(np.float32).transpose(2, 1, 0),
                                     np.diag([1.5, 1.5, 4.0, 1.0])), str(path))
    code, err = run([path, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out'],
                    capsys)
    assert_one_line_error(DETECT, code, err, f'{path}: 200 voxels are NaN or infinite')
    assert not (tmp_path / 'out').exists()


def test_row4_full_disk_keeps_the_earlier_results(detect, capsys, tmp_path, monkeypatch):
    from mp3d_mmdet.volume.outputs import writer as outputs
    run, cfg, ckpt, volume = detect
    args = [volume, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out',
            '--score-thr', '0.0']
    assert run(args, capsys)[0] == 0
    earlier = _files(tmp_path / 'out')
    assert {'detections.json', 'lesions.csv'} <= set(earlier)

    def disk_full(result, path, overlays=None):
        with open(path, 'w') as handle:
            handle.write('candidate_id,fir')  # half a file, then the disk is full
        raise OSError(28, 'No space left on device', path)

    monkeypatch.setattr(outputs, 'write_lesions_csv', disk_full)
    code, err = run(args + ['--overwrite'], capsys)
    assert_one_line_error(DETECT, code, err, 'No space left on device',
                          f'nothing written to {tmp_path}')
    assert _files(tmp_path / 'out') == earlier
    assert os.listdir(tmp_path) == ['out']  # no staging folder left


def test_row5_rerun_leaves_exactly_the_new_results(detect, capsys, tmp_path):
    run, cfg, ckpt, volume = detect
    args = [volume, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out',
            '--score-thr', '0.0']
    assert run(args + ['--top-k-overlays', '3'], capsys)[0] == 0  # all viewer files too
    assert {'overlays/candidate_003.png', 'report.html'} <= set(_files(tmp_path / 'out'))
    code, err = run(args, capsys)  # refused without --overwrite
    assert_one_line_error(DETECT, code, err, 'is not empty', 'pass --overwrite')
    assert run(args + ['--top-k-overlays', '1', '--formats', 'none', '--overwrite'],
               capsys)[0] == 0
    assert sorted(_files(tmp_path / 'out')) == [
        '.mp3d_outputs.json', 'detections.json', 'lesions.csv', 'overlays/candidate_001.png']
    assert os.listdir(tmp_path) == ['out']


def test_row6_unusable_out_is_refused_before_inference(detect, capsys, tmp_path, monkeypatch):
    import mp3d_mmdet.volume
    run, cfg, ckpt, volume = detect
    monkeypatch.setattr(mp3d_mmdet.volume, 'read_ct_volume',
                        lambda *a, **k: pytest.fail('inference started'))
    (tmp_path / 'results.txt').write_text('keep me')
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'notes.txt').write_text('mine')
    for out, patterns in [
            (tmp_path / 'results.txt', ['exists and is not a folder']),
            (tmp_path / 'results.txt' / 'out', ['--out ']),  # cannot be created
            (busy, ["is not empty (1 entries, e.g. 'notes.txt')"])]:
        code, err = run([volume, '--config', cfg, '--checkpoint', ckpt, '--out', out], capsys)
        assert_one_line_error(DETECT, code, err, *patterns)
    code, err = run([volume, '--config', cfg, '--checkpoint', ckpt, '--out', busy,
                     '--overwrite'], capsys)
    assert_one_line_error(DETECT, code, err,
                          "holds 'notes.txt', which mp3d-detect-volume did not write")
    assert _files(tmp_path) == {'results.txt': b'keep me', 'busy/notes.txt': b'mine'}


def test_row13_unusable_checkpoints(detect, capsys, tmp_path):
    run, cfg, _, volume = detect
    (tmp_path / 'text.pth').write_text('see epoch_12.pth\n')
    (tmp_path / 'empty.pth').write_bytes(b'')
    torch.save({'state_dict': {'fc.weight': torch.zeros(2, 2)}}, str(tmp_path / 'other.pth'))
    for name, pattern in [('text.pth', "a text file starting with 'see epoch_12.pth'"),
                          ('empty.pth', 'an empty file (0 bytes)'),
                          ('other.pth', 'not a checkpoint of the model of')]:
        code, err = run([volume, '--config', cfg, '--checkpoint', tmp_path / name, '--out',
                         tmp_path / 'out'], capsys)
        assert_one_line_error(DETECT, code, err, f'{tmp_path / name}: ', pattern)
    # `mim test --checkpoint` / load_from go through the runner's load_checkpoint
    runner = toy_runner(tmp_path / 'work', max_epochs=1)
    for name, pattern in [('text.pth', 'a text file'), ('empty.pth', 'an empty file'),
                          ('other.pth', 'none of its 1 weights belongs to the model')]:
        with pytest.raises(CheckpointFileError, match=pattern):
            runner.load_checkpoint(str(tmp_path / name))
    with pytest.raises(FileNotFoundError, match=r'checkpoint file not found: .*missing.pth '
                       r'\(load_from or --checkpoint; relative paths are read from .*'
                       r'docs/pretraining.md'):
        runner.load_checkpoint(str(tmp_path / 'missing.pth'))


def test_row14_absurd_volume_spacing(detect, capsys, tmp_path):
    run, cfg, ckpt, _ = detect
    for spacing, pattern in [((1.5, 1.5, 1e9), 'slice interval 1000000000.0 mm'),
                             ((1e-4, 1e-4, 4.0), 'pixel spacing (x) 0.0001 mm')]:
        path = str(tmp_path / 'odd.mha')
        sitk.WriteImage(make_sitk_image(phantom_volume((40, 36, 8), spacing), spacing), path)
        code, err = run([path, '--config', cfg, '--checkpoint', ckpt, '--out',
                         tmp_path / 'out'], capsys)
        assert_one_line_error(DETECT, code, err, pattern,
                              'outside the plausible CT range')


# ----------------------------------------------------------------------- other tools
def test_row2_convert_output_reaching_the_input_through_a_link(detect, capsys, tmp_path):
    _, _, ckpt, _ = detect
    before = open(ckpt, 'rb').read()
    (tmp_path / 'alias').symlink_to(osp.dirname(ckpt))
    assert _tool('convert_pretraining_checkpoint').main(
        [ckpt, str(tmp_path / 'alias' / osp.basename(ckpt))]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and f'is the input {ckpt}' in err
    assert open(ckpt, 'rb').read() == before


def test_row7_eval_froc_pickle_that_runs_code(tmp_path, capsys):
    marker = tmp_path / 'pwned'
    entries = [data_sample(0, 1.0, [lesion([0, 0, 9, 9])], [[0, 0, 9, 9, 0.9]]).to_dict()]
    entries[0]['img_path'] = _RunsCode(marker)
    dump(entries, str(tmp_path / 'predictions.pkl'))  # as `mim test --out` writes pickles
    assert _tool('eval_froc').main([str(tmp_path / 'predictions.pkl')]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'predictions.pkl: refused to load: the pickle asks for' in err
    assert not marker.exists()


def test_row3_sigkill_while_checkpointing_with_the_demo_hook_then_resume(tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mp3d_fpn_synthetic_demo.py'))
    assert cfg.runner_type == 'DeviceAwareRunner'
    hook = cfg.default_hooks.checkpoint
    assert hook.type == 'CrashSafeCheckpointHook' and hook.max_keep_ckpts == 1
    proc = train_and_sigkill_while_writing(tmp_path, hook=hook.type,
                                           max_keep_ckpts=hook.max_keep_ckpts)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with open(tmp_path / 'last_checkpoint') as handle:
        last = handle.read().strip()
    assert last.endswith('epoch_1.pth') and torch.load(last, weights_only=True)['meta'][
        'epoch'] == 1
    runner = toy_runner(tmp_path, max_epochs=3, resume=True, max_keep_ckpts=1)
    runner.train()
    assert runner.epoch == 3
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) == ['epoch_3.pth']


# -------------------------------------------------------------------- DeepLesion csv rows
def _dataset(root):
    return DeepLesionDataset(data_root=str(root), ann_file='DL_info.csv',
                             data_prefix=dict(img='Images_png/'), pipeline=[])


def _csv_with(tmp_path, **overrides):
    """A 2-row DeepLesion set whose second row gets ``overrides`` in the csv only."""
    rows = [make_row(), make_row('000002_01_01_005.png')]
    root = write_dataset(tmp_path, rows)
    rows[1] = dataclasses.replace(rows[1], **overrides)
    write_dl_info(osp.join(root, 'DL_info.csv'), rows)
    return root


@pytest.mark.parametrize('row, overrides, message', [
    (8, dict(image_size=(96, 96)),
     "csv row(s) 3: annotated size 96x96 but the key slice "),
    (9, dict(bounding_box=(11.0, 21.0, 11.0, 41.0)),
     "row 3, column 'Bounding_boxes': expected x1 < x2 and y1 < y2"),
    (10, dict(spacing_mm_px=(0.8, 0.8, 1e-6)),
     "row 3, column 'Spacing_mm_px_': slice interval 1e-06 mm is outside the plausible CT"),
    (11, dict(patient_index=7),
     "row 3, column 'Patient_index': does not match File_name '000002_01_01_005.png'"),
    (14, dict(spacing_mm_px=(0.8, 0.8, 1e9)),
     "row 3, column 'Spacing_mm_px_': slice interval 1000000000.0 mm is outside"),
    (14, dict(spacing_mm_px=(1e-4, 1e-4, 2.5)),
     "row 3, column 'Spacing_mm_px_': pixel spacing (x) 0.0001 mm is outside"),
])
def test_rows_8_to_14_bad_csv_rows(tmp_path, row, overrides, message):
    root = _csv_with(tmp_path, **overrides)
    with pytest.raises(ValueError) as error:
        _dataset(root)
    assert message in str(error.value) and 'DL_info.csv' in str(error.value)
    assert '\n' not in str(error.value)


def test_row11_duplicate_csv_row(tmp_path):
    root = write_dataset(tmp_path, [make_row(), make_row('000002_01_01_005.png')])
    lines = open(osp.join(root, 'DL_info.csv')).read().splitlines()
    with open(osp.join(root, 'DL_info.csv'), 'w') as handle:
        handle.write('\n'.join(lines + [lines[1]]) + '\n')
    with pytest.raises(ValueError, match=r'DL_info.csv: row 4 repeats row 2 \(the same box on '
                       r'key slice 000001_01_01/005.png\)'):
        _dataset(root)


def test_row12_non_utf8_csv(tmp_path):
    root = write_dataset(tmp_path, [make_row(), make_row('000002_01_01_005.png')])
    data = open(osp.join(root, 'DL_info.csv'), 'rb').read().replace(b',M,', b',\xc9,', 1)
    open(osp.join(root, 'DL_info.csv'), 'wb').write(data)
    with pytest.raises(ValueError, match=r'DL_info.csv: row 2 is not UTF-8 text \(byte 0xc9'):
        _dataset(root)


# ------------------------------------------------------------------------- issue #26 rows
def _cli_error(tool, argv, capsys):
    """Run ``mp3d-<tool>`` and return its one-line error (asserting exit 1 and one line)."""
    assert _tool(tool).main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    return err


def _predictions(tmp_path, samples):
    """A `mim test --out` pickle of data-sample dicts."""
    path = str(tmp_path / 'predictions.pkl')
    dump([s if isinstance(s, dict) else s.to_dict() for s in samples], path)
    return path


def _official_json(tmp_path, images, annotations):
    import json
    path = tmp_path / 'deeplesion_test.json'
    path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                    categories=[{'id': 1, 'name': 'Lesion'}])))
    return str(path)


def _image(image_id, file_name='000001_01_01/005.png'):
    return dict(id=image_id, file_name=file_name, width=64, height=64, spacing=0.8,
                slice_intv=2.5)


def _annotation(ann_id, image_id, bbox=(10.0, 20.0, 20.0, 20.0)):
    return dict(id=ann_id, image_id=image_id, bbox=list(bbox), category_id=1)


@pytest.mark.parametrize('row, images, annotations, message', [
    (1, [_image(1), _image(2, '000002_01_01/005.png')],
     [_annotation(1, 1), _annotation(2, 2), _annotation(3, 1)],
     r'annotations[2] (id 3) repeats annotations[0] (id 1) (the same box on key slice '
     r'000001_01_01/005.png); each lesion must be listed once'),
    (2, [_image(1), _image(2)], [_annotation(1, 1), _annotation(2, 2, (30, 30, 5, 5))],
     "images[1] (id 2): 'file_name' '000001_01_01/005.png' is already the key slice of "
     'images[0] (id 1); one image record per key slice'),
    (5, [_image(1)], [_annotation(1, 1, (25.169, 19.0204, 1e-6, 1e-6))],
     "annotations[0] (id 1): 'bbox' [x, y, w, h] must have w > 0 and h > 0: a box of positive "
     'width and height (sides of at least 0.01 px between float32 corners'),
])
def test_i26_rows_1_2_5_official_json_refused_by_eval_froc(tmp_path, capsys, row, images,
                                                           annotations, message):
    ann = _official_json(tmp_path, images, annotations)
    predictions = _predictions(tmp_path, [data_sample(1, 2.5, [], [[0, 0, 9, 9, 0.9]])])
    err = _cli_error('eval_froc', [predictions, '--ann', ann], capsys)
    assert f'{ann}: {message}' in err


def test_i26_row5_csv_corners_equal_in_float32(tmp_path):
    root = write_dataset(tmp_path, [make_row(), make_row('000002_01_01_005.png')])
    path = osp.join(root, 'DL_info.csv')
    lines = open(path).read().splitlines()
    lines[2] = lines[2].replace('"11, 21, 31, 41"', '"11.0000001, 21, 11.0000002, 41"')
    open(path, 'w').write('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=r"DL_info.csv: row 3, column 'Bounding_boxes': expected "
                       r'x1 < x2 and y1 < y2: a box of positive width and height .*got width 0 '
                       r'and height 20'):
        _dataset(root)


def _volume_results(path, volumes):
    """A results file of mp3d-detect-volumes: ``volumes`` = {name: (z_offset, boxes)}."""
    import json

    from mp3d_mmdet.volume import RESULTS_FORMAT
    lines = [{'header': {'format': RESULTS_FORMAT, 'format_version': 1, 'settings': {}}}]
    for name, (z_offset, boxes) in volumes.items():
        lines.append(dict(name=name, source=f'/data/{name}.nii.gz', shape_xyz=[64, 64, 13],
                          spacing_mm_xyz=[0.8, 0.8, 2.5], z_offset=z_offset, boxes=boxes))
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return str(path)


def test_i26_row3_z_offset_follows_the_sub_volume_name(tmp_path, capsys):
    from mp3d_mmdet.datasets.lesions_3d import write_lens_annotations
    from mp3d_mmdet.volume import volume_inputs_from_paths
    name = '000001_01_01_103-115'
    # the writer: a NIfTI named after its sub-volume gets the name's z_offset
    assert volume_inputs_from_paths([f'/data/{name}.nii.gz'])[0].z_offset == 103
    assert volume_inputs_from_paths(['/data/scan.nii.gz'])[0].z_offset == 0
    gt = str(tmp_path / 'lesions_3d.pkl')
    write_lens_annotations(gt, {'test': {name: [[10, 10, 105, 20, 20, 107]]}})
    # results written before the rule: voxel z, z_offset 0; evaluated with the name's offset
    results = _volume_results(tmp_path / 'detections_3d.jsonl',
                              {name: (0, [[10, 10, 2, 20, 20, 4, 0.9]])})
    eval_volumes = _tool('eval_volumes')
    with pytest.warns(UserWarning, match=r'1 volume\(s\) have another z_offset than the first '
                      r'slice their sub-volume name states, e.g. 000001_01_01_103-115 \(0\)'):
        report = eval_volumes.evaluate(eval_volumes.parse_args([results, '--gt', gt]))
    assert report['subsets']['all']['sensitivity'] == [1.0] * 7


def test_i26_row7_lens_box_outside_the_sub_volume_image(tmp_path, capsys):
    from mp3d_mmdet.datasets.lesions_3d import write_lens_annotations
    name = '000001_01_01_103-115'
    gt = str(tmp_path / 'lesions_3d.pkl')
    write_lens_annotations(gt, {'test': {name: [[370, 380, 105, 400, 390, 107]]}})
    results = _volume_results(tmp_path / 'detections_3d.jsonl',
                              {name: (103, [[10, 10, 2, 20, 20, 4, 0.9]])})
    err = _cli_error('eval_volumes', [results, '--gt', gt], capsys)
    assert (f"{gt}: sub-volume '{name}', box 0 [370.0, 380.0, 105.0, 400.0, 390.0, 107.0] lies "
            "outside the volume's 64x64 image") in err


def test_i26_row8_repeated_fp_rate_and_old_pickle_protocols(tmp_path, capsys):
    import pickle
    name = '000001_01_01_103-115'
    results = _volume_results(tmp_path / 'detections_3d.jsonl',
                              {name: (103, [[10, 10, 2, 20, 20, 4, 0.9]])})
    for protocol in (0, 1):
        gt = tmp_path / f'lens_{protocol}.pkl'
        gt.write_bytes(pickle.dumps({'test': {name: np.array([[10., 10., 105., 20., 20., 107.]])}},
                                    protocol=protocol))
        report = _tool('eval_volumes').evaluate(_tool('eval_volumes').parse_args(
            [results, '--gt', str(gt)]))
        assert report['subsets']['all']['sensitivity'] == [1.0] * 7
    err = _cli_error('eval_volumes', [results, '--gt', gt, '--fps', 4, 0.5, 2, 0.5], capsys)
    assert '--fps: fps must not repeat a rate (0.5 is given more than once)' in err
    predictions = _predictions(tmp_path, [data_sample(0, 2.5, [lesion([0, 0, 9, 9])],
                                                      [[0, 0, 9, 9, 0.9]])])
    err = _cli_error('eval_froc', [predictions, '--fps', 4, 0.5, 2, 0.5], capsys)
    assert 'fps must not repeat a rate (0.5 is given more than once)' in err


def test_i26_row9_mp3d_protocol_scores_the_file_box(tmp_path, capsys):
    root = write_dataset(tmp_path, [make_row(bounding_box=(59.0, 21.0, 79.0, 31.0))])
    predictions = _predictions(tmp_path, [data_sample(0, 2.5, [], [[58, 20, 78, 30, 0.9]])])
    eval_froc = _tool('eval_froc')
    sens = {}
    for protocol in ('mp3d', 'deeplesion'):
        with pytest.warns(UserWarning, match='clipped to 0-based'):
            metrics = eval_froc.evaluate(eval_froc.parse_args(
                [predictions, '--ann', osp.join(root, 'DL_info.csv'), '--split', 'train',
                 '--protocol', protocol, '--no-map', '--fps', '1']))
        sens[protocol] = metrics['froc/sens@1']
    # the detection is the file's box (0-based [58, 20, 78, 30]), which the csv's image
    # clips to [58, 20, 63, 30]: a hit of the file's box, a miss of the clipped one
    assert sens == {'mp3d': 1.0, 'deeplesion': 0.0}


def test_i26_row14_nested_json_and_malformed_records(tmp_path, capsys):
    nested = tmp_path / 'deeplesion_test.json'
    nested.write_text('{"images": ' + '[' * 50000 + ']' * 50000 + ', "annotations": []}')
    predictions = _predictions(tmp_path, [data_sample(1, 2.5, [], [[0, 0, 9, 9, 0.9]])])
    err = _cli_error('eval_froc', [predictions, '--ann', nested], capsys)
    assert f'{nested}: not a JSON annotation file (nested deeper than 32 levels' in err
    records = tmp_path / 'records.json'
    for content, message in [
            ('{"format": "mp3d_mmdet.froc_records", "images": ' + '[' * 50000 + ']' * 50000
             + '}', 'is not valid JSON: nested deeper than 32 levels'),
            ('{"format": "mp3d_mmdet.froc_records"}',
             "'images' must be a list of image records, got '<missing>'"),
            ('{"format": "mp3d_mmdet.froc_records", "images": 5}',
             "'images' must be a list of image records, got 5")]:
        records.write_text(content)
        assert message in _cli_error('eval_froc', [records], capsys)
    sample = data_sample(0, 2.5, [lesion([0, 0, 9, 9])], [[0, 0, 9, 9, 0.9]]).to_dict()
    for change, message in [(dict(instances=5), "'instances' must be a list of dicts"),
                            (dict(pred_instances=None),
                             "'pred_instances' must hold 'bboxes' and 'scores', got None")]:
        path = _predictions(tmp_path, [dict(sample, **change)])
        err = _cli_error('eval_froc', [path], capsys)
        assert f'{path}: data sample with img_id=0: {message}' in err


def test_i26_row14_nested_json_in_the_volume_results_file(tmp_path, capsys):
    results = tmp_path / 'detections_3d.jsonl'
    header = json.dumps({'header': {'format': 'mp3d-volume-detections-3d', 'format_version': 1,
                                    'settings': {}}})
    results.write_text(header + '\n{"name": ' + '[' * 50000 + ']' * 50000 + '}\n')
    lens = tmp_path / 'lens.pkl'
    err = _cli_error('eval_volumes', [results, '--gt', lens], capsys)
    assert f'{results}: line 2: not valid JSON (nested deeper than 32 levels' in err


# ------------------------------------------------------ issue 26: outputs, geometry, paths
# item  case
# 4     gantry-tilted (sheared) DICOM series: refused in one line, never wrong coordinates
# 8     --label-score-thr nan (empties the label map); draw-detections --num -1
# 10    --overwrite and a user's file inside overlays/
# 11    --overwrite and the input CT in --out under an output's name
# 12    mp3d-detect-volumes --formats html and a user's OUT/index.html
# 13    a kill between the two renames of the commit; a converter over an unrelated file
# 14    output paths of the wrong kind or read-only; complex NIfTI; Ctrl-C in detect-volume
def _one_line(code, stderr, prog, *patterns, status=1):
    assert code == status and stderr.count('\n') == 1, stderr
    assert stderr.startswith(f'{prog}: ') and 'Traceback' not in stderr
    for pattern in patterns:
        assert pattern in stderr, stderr


def test_i26_item4_gantry_tilted_dicom_series(detect, capsys, tmp_path):
    from helpers.volume_fixtures import write_dicom_series
    run, cfg, ckpt, _ = detect
    hu = phantom_volume((40, 36, 8), (0.8, 0.8, 2.5))
    folder = tmp_path / 'tilted'
    write_dicom_series(make_sitk_image(hu, (0.8, 0.8, 2.5)), str(folder),
                       shear_mm=(0.0, 0.88, 0.0))
    before = _files(tmp_path)
    code, err = run([folder, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out'],
                    capsys)
    assert_one_line_error(DETECT, code, err, f'{folder}: sheared DICOM series (gantry tilt)',
                          'shifted 0.88 mm in-plane')
    assert _files(tmp_path) == before


def test_i26_item8_nan_label_threshold_and_negative_num(detect, capsys, tmp_path):
    run, cfg, ckpt, volume = detect
    with pytest.raises(SystemExit) as exit_:
        run([volume, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out',
             '--label-score-thr', 'nan'], capsys)
    assert exit_.value.code == 2
    assert "--label-score-thr: must be a number in [0, 1], got 'nan'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        _tool('draw_detections').main([str(tmp_path / 'p.pkl'), '--out-dir',
                                       str(tmp_path / 'o'), '--num', '-1'])
    assert exit_.value.code == 2
    assert '--num must be >= 1, got -1' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'o').exists()


def test_i26_item10_user_file_in_overlays_is_kept(detect, capsys, tmp_path):
    run, cfg, ckpt, volume = detect
    args = [volume, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out',
            '--score-thr', '0.0', '--formats', 'none']
    assert run(args, capsys)[0] == 0
    (tmp_path / 'out' / 'overlays' / 'my_notes.txt').write_text('mine')
    before = _files(tmp_path)
    code, err = run(args + ['--overwrite'], capsys)
    assert_one_line_error(DETECT, code, err,
                          "holds 'overlays/my_notes.txt', which mp3d-detect-volume did not write")
    assert _files(tmp_path) == before


def test_i26_item11_input_in_out_under_an_output_name(detect, capsys, tmp_path):
    import shutil
    run, cfg, ckpt, volume = detect
    out = tmp_path / 'out'
    assert run([volume, '--config', cfg, '--checkpoint', ckpt, '--out', out, '--formats',
                'nifti'], capsys)[0] == 0
    shutil.copy(volume, out / 'lesion_labels.nii.gz')  # the user's CT, under an output's name
    before = _files(tmp_path)
    code, err = run([out / 'lesion_labels.nii.gz', '--config', cfg, '--checkpoint', ckpt,
                     '--out', out, '--overwrite'], capsys)
    assert_one_line_error(DETECT, code, err,
                          f'--out {out} holds the input {out / "lesion_labels.nii.gz"}')
    assert _files(tmp_path) == before


def test_i26_item12_user_index_html_is_kept(detect, capsys, tmp_path, monkeypatch):
    import mp3d_mmdet.volume
    _, cfg, ckpt, volume = detect
    (tmp_path / 'scans').mkdir()
    os.symlink(volume, tmp_path / 'scans' / 'ct.nii.gz')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'index.html').write_text('<p>my own page</p>')
    before = _files(tmp_path)
    monkeypatch.setattr(mp3d_mmdet.volume, 'detect_volume_batch',
                        lambda *a, **k: pytest.fail('detection started'))
    code = _tool('detect_volumes').main(['--folder', str(tmp_path / 'scans'), '--config', cfg,
                                         '--checkpoint', ckpt, '--out', str(out), '--formats',
                                         'html', '--no-progress'])
    _one_line(code, capsys.readouterr().err, 'mp3d-detect-volumes',
              f'OUT/index.html {out / "index.html"} exists and was not written by mp3d_mmdet')
    assert _files(tmp_path) == before


def test_i26_item13_commit_cut_between_its_renames(detect, capsys, tmp_path, monkeypatch):
    from mp3d_mmdet.utils import safe_files
    run, cfg, ckpt, volume = detect
    out = tmp_path / 'out'
    args = [volume, '--config', cfg, '--checkpoint', ckpt, '--out', out, '--score-thr', '0.0',
            '--formats', 'none']
    assert run(args, capsys)[0] == 0
    earlier = _files(out)
    # where the two folders cannot be swapped in one step: a kill after the first rename
    monkeypatch.setattr(safe_files, '_exchange', lambda a, b: False)
    real_replace = os.replace

    def killed(src, dst):
        if osp.basename(src).startswith('.out.') and src.endswith('.partial'):
            raise KeyboardInterrupt  # stands for the kill
        real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', killed)
    code, err = run(args + ['--overwrite'], capsys)
    assert code == 130 and err == 'mp3d-detect-volume: interrupted\n'
    assert _files(out) == earlier  # put back; a real SIGKILL leaves them in .previous ...
    os.mkdir(tmp_path / '.out.x.previous')
    os.rename(out, tmp_path / '.out.x.previous' / 'results')
    monkeypatch.undo()
    code, err = run(args + ['--overwrite'], capsys)  # ... which the next run restores
    assert code == 0 and 'restored the earlier results' in err
    assert sorted(os.listdir(tmp_path)) == ['out']


def test_i26_item13_converter_over_an_unrelated_file(detect, capsys, tmp_path):
    _, _, ckpt, _ = detect
    (tmp_path / 'mine.pth').write_bytes(b'my weights')
    (tmp_path / 'folder.pth').mkdir()
    before = _files(tmp_path)
    for dst, pattern in [('mine.pth', 'exists and was not written by a checkpoint converter'),
                         ('folder.pth', 'is a folder')]:
        code = _tool('convert_pretraining_checkpoint').main([ckpt, str(tmp_path / dst)])
        _one_line(code, capsys.readouterr().err, 'mp3d-convert-pretraining-checkpoint',
                  f'destination {tmp_path / dst} {pattern}')
    assert _files(tmp_path) == before


def test_i26_item14_output_paths_of_the_wrong_kind(tmp_path, capsys):
    entries = [data_sample(0, 1.0, [lesion([0, 0, 9, 9])], [[0, 0, 9, 9, 0.9]]).to_dict()]
    dump(entries, str(tmp_path / 'predictions.pkl'))
    (tmp_path / 'a_folder').mkdir()
    (tmp_path / 'a_file').write_text('keep')
    before = _files(tmp_path)
    pkl, folder, file_ = (str(tmp_path / n) for n in ('predictions.pkl', 'a_folder', 'a_file'))
    for tool, argv, pattern in [
            ('eval_froc', [pkl, '--summary', folder], f'--summary {folder} is a folder'),
            ('eval_froc', [pkl, '--plot-dir', file_], f'--plot-dir {file_} is a file'),
            ('eval_volumes', [pkl, '--gt', pkl, '--plot', folder], f'--plot {folder} is a'),
            ('eval_volumes', [pkl, '--gt', pkl, '--summary', folder], '--summary'),
            ('eval_volumes', [folder, '--gt', pkl], folder),  # a results path that is a folder
            ('draw_detections', [pkl, '--out-dir', file_], f'--out-dir {file_} is a file')]:
        code = _tool(tool).main(argv)
        _one_line(code, capsys.readouterr().err, f"mp3d-{tool.replace('_', '-')}", pattern)
    assert _files(tmp_path) == before


def test_i26_item14_read_only_output(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile
    entries = [data_sample(0, 1.0, [lesion([0, 0, 9, 9])], [[0, 0, 9, 9, 0.9]]).to_dict()]
    dump(entries, str(tmp_path / 'predictions.pkl'))

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system', dir)

    monkeypatch.setattr(tempfile, 'mkstemp', read_only)
    summary = tmp_path / 'summary.json'
    code = _tool('eval_froc').main([str(tmp_path / 'predictions.pkl'), '--no-map',
                                    '--summary', str(summary)])
    _one_line(code, capsys.readouterr().err, 'mp3d-eval-froc',
              f'Read-only file system: {summary}')
    assert not summary.exists()


def test_i26_item14_complex_nifti_and_ctrl_c(detect, capsys, tmp_path, monkeypatch):
    import nibabel
    import mp3d_mmdet.volume
    run, cfg, ckpt, volume = detect
    path = tmp_path / 'complex.nii.gz'
    nibabel.save(nibabel.Nifti1Image(np.ones((40, 36, 8), np.complex64),
                                     np.diag([1.5, 1.5, 4.0, 1.0])), str(path))
    code, err = run([path, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out'],
                    capsys)
    assert_one_line_error(DETECT, code, err, f'{path}: complex of 32-bit float voxels')

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mp3d_mmdet.volume, 'read_ct_volume', ctrl_c)
    code, err = run([volume, '--config', cfg, '--checkpoint', ckpt, '--out', tmp_path / 'out'],
                    capsys)
    assert code == 130 and err == 'mp3d-detect-volume: interrupted\n'
    assert sorted(os.listdir(tmp_path)) == ['complex.nii.gz']  # no staging folder left


def test_i26_item14_every_command_goes_through_run_command():
    """Ctrl-C -> 130 and OSError -> one line hold for a command only if its main hands the
    work to run_command (directly or through the converters' ConverterCommand)."""
    import inspect
    from mp3d_mmdet import cli
    names = [line.split()[0].strip('`') for line in cli.__doc__.splitlines()
             if line.startswith('``mp3d-')]
    assert len(names) >= 9
    for name in names:
        source = inspect.getsource(_tool(name[len('mp3d-'):].replace('-', '_')))
        assert 'run_command(' in source or 'COMMAND.main(' in source, name
