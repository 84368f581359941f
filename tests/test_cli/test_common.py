"""mp3d_mmdet.cli.common: the exit statuses and stderr lines of every command, and the shared
argument groups."""
import json

import pytest

from mp3d_mmdet.cli.common import (CliError, add_detection_arguments, add_split_argument,
                                   check_detection_arguments, make_parser, os_error_message,
                                   run_command, warn, write_json_summary)

PROG = 'mp3d-test'


def _raise(error: BaseException):
    def command():
        raise error
    return command


def test_done_is_status_0_and_silent(capsys):
    assert run_command(PROG, lambda: 'ignored return value') == 0
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('error,status,line', [
    (CliError('--out x: 2 files failed'), 1, '--out x: 2 files failed'),
    (CliError('unusable', status=3), 3, 'unusable'),
    (ValueError('row 7 of a.csv: bad box'), 1, 'row 7 of a.csv: bad box'),
    (FileExistsError('x holds a data set'), 1, 'x holds a data set'),  # an OSError's own text
    (PermissionError(13, 'Permission denied', '/out/a.json'), 1,
     'Permission denied: /out/a.json'),
])
def test_errors_are_one_line_with_the_status(capsys, error, status, line):
    assert run_command(PROG, _raise(error)) == status
    assert capsys.readouterr().err == f'{PROG}: error: {line}\n'


def test_an_os_error_names_the_file(capsys, tmp_path):
    missing = tmp_path / 'missing' / 'x.json'
    assert run_command(PROG, lambda: open(missing)) == 1
    assert capsys.readouterr().err == f'{PROG}: error: No such file or directory: {missing}\n'
    error = OSError(28, 'No space left on device')
    assert os_error_message(error, 'out/') == 'No space left on device: out/'
    assert os_error_message(error) == '[Errno 28] No space left on device'


def test_ctrl_c_is_status_130_with_one_line(capsys):
    assert run_command(PROG, _raise(KeyboardInterrupt()), interrupted='rerun to resume') == 130
    assert capsys.readouterr().err == f'{PROG}: interrupted; rerun to resume\n'
    assert run_command(PROG, _raise(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == f'{PROG}: interrupted\n'


def test_other_exceptions_are_not_hidden():
    with pytest.raises(KeyError):  # a bug keeps its traceback
        run_command(PROG, _raise(KeyError('key')))


def test_warning_line(capsys):
    warn(PROG, 'reoriented from RAS to LPS')
    assert capsys.readouterr().err == f'{PROG}: warning: reoriented from RAS to LPS\n'


def test_detection_arguments_and_their_checks(capsys):
    parser = make_parser(PROG, 'test')
    add_detection_arguments(parser)
    args = parser.parse_args(['--config', 'c.py', '--checkpoint', 'w.pth', '--cfg-options',
                              'a.b=2'])
    assert (args.device, args.score_thr, args.batch_size, args.iou_thr, args.max_gap,
            args.min_slices, args.pixel_spacing, args.no_progress) == \
        ('cpu', 0.5, 4, 0.3, 1, 1, None, False)
    assert args.cfg_options == {'a.b': 2}
    check_detection_arguments(parser, args)
    args.max_gap = -1
    with pytest.raises(SystemExit) as exit_info:
        check_detection_arguments(parser, args)
    assert exit_info.value.code == 2
    assert '--max-gap must be >= 0' in capsys.readouterr().err
    for bad in ('1.5', 'nan'):  # the one score-threshold rule (--label-score-thr's too)
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(['--config', 'c.py', '--checkpoint', 'w.pth', '--score-thr', bad])
        assert exit_info.value.code == 2
        assert f"--score-thr: must be a number in [0, 1], got '{bad}'" in capsys.readouterr().err


def test_split_names(capsys):
    parser = make_parser(PROG, 'test')
    add_split_argument(parser, 'test', 'split')
    assert parser.parse_args([]).split == 'test'
    assert parser.parse_args(['--split', 'val']).split == 'val'
    with pytest.raises(SystemExit):
        parser.parse_args(['--split', 'validation'])
    assert "invalid choice: 'validation'" in capsys.readouterr().err


def test_json_summary_into_a_new_folder(tmp_path):
    path = tmp_path / 'new' / 'summary.json'
    write_json_summary(str(path), dict(metric=0.5, fps=[1, 2]))
    assert json.loads(path.read_text()) == dict(metric=0.5, fps=[1, 2])
