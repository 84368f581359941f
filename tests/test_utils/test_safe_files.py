"""Whole files or none, whole result folders or none, never over an input."""
import os

import numpy as np
import pytest

from mp3d_mmdet.utils.safe_files import (StagedOutputDir, atomic_imwrite, atomic_write,
                                         check_not_input, replace_with_complete_file)


class _Interrupted(Exception):
    pass


def _entries(folder):
    return sorted(os.listdir(folder))


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / 'a.json'
    path.write_text('old')
    with atomic_write(str(path)) as handle:
        handle.write('new')
        assert path.read_text() == 'old'  # nothing visible until the block ends
    assert path.read_text() == 'new' and _entries(tmp_path) == ['a.json']
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_failure_keeps_old_file_and_leaves_no_partial(tmp_path):
    path = tmp_path / 'a.csv'
    path.write_text('old, complete')
    with pytest.raises(_Interrupted):
        with atomic_write(str(path)) as handle:
            handle.write('half')
            raise _Interrupted()
    assert path.read_text() == 'old, complete' and _entries(tmp_path) == ['a.csv']


def test_atomic_write_binary_and_mode_check(tmp_path):
    with atomic_write(str(tmp_path / 'b.bin'), 'wb') as handle:
        handle.write(b'\x00\x01')
    assert (tmp_path / 'b.bin').read_bytes() == b'\x00\x01'
    with pytest.raises(ValueError, match='mode'):
        with atomic_write(str(tmp_path / 'c'), 'a'):
            pass


def test_atomic_imwrite_writes_a_decodable_png(tmp_path):
    import cv2
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    atomic_imwrite(str(tmp_path / 'x.png'), image)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'x.png')), image)


def test_replace_with_complete_file(tmp_path):
    (tmp_path / '.c.pth.partial').write_bytes(b'new')
    (tmp_path / 'c.pth').write_bytes(b'old')
    replace_with_complete_file(str(tmp_path / '.c.pth.partial'), str(tmp_path / 'c.pth'))
    assert (tmp_path / 'c.pth').read_bytes() == b'new' and _entries(tmp_path) == ['c.pth']


def test_check_not_input_resolves_links(tmp_path):
    src = tmp_path / 'real' / 'model.pth'
    src.parent.mkdir()
    src.write_bytes(b'weights')
    os.symlink(tmp_path / 'real', tmp_path / 'alias')
    os.link(src, tmp_path / 'hard.pth')
    for output in (src, tmp_path / 'alias' / 'model.pth', tmp_path / 'hard.pth',
                   tmp_path / 'real' / '..' / 'real' / 'model.pth'):
        with pytest.raises(ValueError, match=r'^dst .* is the input .*model\.pth'):
            check_not_input(str(output), [str(src)], 'dst')
    check_not_input(str(tmp_path / 'real' / 'other.pth'), [str(src)])  # a new file is fine


def test_staged_output_dir_into_missing_folder(tmp_path):
    staged = StagedOutputDir(str(tmp_path / 'out'), known_entries=['a.txt'])
    assert not (tmp_path / 'out').exists() and staged.path.endswith('.partial')
    (tmp_path / 'x').mkdir()  # unrelated sibling stays
    with open(os.path.join(staged.path, 'a.txt'), 'w') as handle:
        handle.write('1')
    assert staged.commit() == str(tmp_path / 'out')
    assert _entries(tmp_path / 'out') == ['a.txt'] and _entries(tmp_path) == ['out', 'x']


def test_staged_output_dir_refusals(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='--out .*file exists and is not a folder'):
        StagedOutputDir(str(tmp_path / 'file'), option='--out')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'detections.json').write_text('{}')
    with pytest.raises(ValueError, match=r'is not empty \(1 entries.*pass --overwrite'):
        StagedOutputDir(str(out), known_entries=['detections.json'])
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match="holds 'notes.txt', which this tool does not write"):
        StagedOutputDir(str(out), overwrite=True, known_entries=['detections.json'])
    assert _entries(out) == ['detections.json', 'notes.txt']
    assert _entries(tmp_path) == ['file', 'out']  # no staging folder was left behind


def test_staged_output_dir_replaces_earlier_results_exactly(tmp_path):
    out = tmp_path / 'out'
    (out / 'overlays').mkdir(parents=True)
    for name in ('old_1.png', 'old_2.png'):
        (out / 'overlays' / name).write_bytes(b'png')
    (out / 'result.json').write_text('old')
    staged = StagedOutputDir(str(out), overwrite=True, known_entries=['result.json', 'overlays'])
    os.mkdir(os.path.join(staged.path, 'overlays'))
    with open(os.path.join(staged.path, 'result.json'), 'w') as handle:
        handle.write('new')
    staged.commit()
    assert (out / 'result.json').read_text() == 'new' and _entries(out / 'overlays') == []
    assert _entries(tmp_path) == ['out']


def test_staged_output_dir_failure_keeps_earlier_results(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'result.json').write_text('old')
    with pytest.raises(_Interrupted):
        with StagedOutputDir(str(out), overwrite=True, known_entries=['result.json']) as staged:
            with open(os.path.join(staged.path, 'result.json'), 'w') as handle:
                handle.write('half')
            raise _Interrupted()
    assert (out / 'result.json').read_text() == 'old' and _entries(tmp_path) == ['out']
    with pytest.raises(RuntimeError, match='already committed or discarded'):
        staged.commit()


def test_staged_output_dir_unwritable_destination(tmp_path):
    (tmp_path / 'a_file').write_text('')
    with pytest.raises(OSError):  # a folder cannot be made inside a file
        StagedOutputDir(str(tmp_path / 'a_file' / 'out'))
