"""Whole files or none, whole result folders or none, never over an input, only one's own
files."""
import errno
import hashlib
import json
import os

import numpy as np
import pytest

from mp3d_mmdet.utils import safe_files
from mp3d_mmdet.utils.safe_files import (OUTPUT_MANIFEST, StagedOutputDir, atomic_imwrite,
                                         atomic_write, check_not_input, check_output_path,
                                         check_replaceable, replace_with_complete_file)


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


def _commit(out, files):
    """Write ``files`` (relative path -> text) as a committed result folder ``out``."""
    staged = StagedOutputDir(str(out), overwrite=True)
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(staged.path, name)), exist_ok=True)
        with open(os.path.join(staged.path, name), 'w') as handle:
            handle.write(text)
    return staged.commit()


def _tree(folder):
    """Every file under ``folder`` (hidden ones too) -> its bytes."""
    return {os.path.relpath(os.path.join(root, name), folder):
            open(os.path.join(root, name), 'rb').read()
            for root, _, names in os.walk(folder) for name in names}


def test_staged_output_dir_into_missing_folder(tmp_path):
    staged = StagedOutputDir(str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists() and staged.path.endswith('.partial')
    (tmp_path / 'x').mkdir()  # unrelated sibling stays
    with open(os.path.join(staged.path, 'a.txt'), 'w') as handle:
        handle.write('1')
    assert staged.commit() == str(tmp_path / 'out')
    assert _entries(tmp_path / 'out') == [OUTPUT_MANIFEST, 'a.txt']
    assert _entries(tmp_path) == ['out', 'x']
    manifest = json.loads((tmp_path / 'out' / OUTPUT_MANIFEST).read_text())
    assert manifest == dict(format_version=1, files={'a.txt': hashlib.sha256(b'1').hexdigest()})


def test_staged_output_dir_refusals(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='--out .*file exists and is not a folder'):
        StagedOutputDir(str(tmp_path / 'file'), option='--out')
    out = tmp_path / 'out'
    _commit(out, {'detections.json': '{}'})
    with pytest.raises(ValueError, match=r'is not empty \(2 entries.*pass --overwrite'):
        StagedOutputDir(str(out))
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match="holds 'notes.txt', which this tool did not write"):
        StagedOutputDir(str(out), overwrite=True)
    assert _entries(out) == [OUTPUT_MANIFEST, 'detections.json', 'notes.txt']
    assert _entries(tmp_path) == ['file', 'out']  # no staging folder was left behind


@pytest.mark.parametrize('change', ['added', 'edited', 'no manifest'])
def test_overwrite_replaces_only_the_tools_own_files(tmp_path, change):
    """The user's file inside a sub-folder, a result the user edited, a folder without a
    manifest: refused, every byte kept."""
    out = tmp_path / 'out'
    _commit(out, {'result.json': 'old', 'overlays/candidate_001.png': 'png'})
    if change == 'added':
        (out / 'overlays' / 'my_notes.txt').write_text('mine')
        name = 'overlays/my_notes.txt'
    elif change == 'edited':
        (out / 'result.json').write_text('edited by the user')
        name = 'result.json'
    else:
        (out / OUTPUT_MANIFEST).unlink()
        name = 'overlays/candidate_001.png'
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=f"holds '{name}', which this tool did not write"):
        StagedOutputDir(str(out), overwrite=True, option='--out')
    assert _tree(tmp_path) == before


def test_output_folder_never_holds_an_input(tmp_path):
    out = tmp_path / 'out'
    _commit(out, {'lesion_labels.nii.gz': 'labels'})
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=r'--out .*out holds the input .*lesion_labels'):
        StagedOutputDir(str(out), overwrite=True, inputs=[str(out / 'lesion_labels.nii.gz')],
                        option='--out')
    with pytest.raises(ValueError, match=r'is the input'):
        StagedOutputDir(str(out), overwrite=True, inputs=[str(out)])
    assert _tree(tmp_path) == before


def test_check_replaceable_files_by_content(tmp_path):
    path = tmp_path / 'index.html'
    check_replaceable(str(path), recognise=lambda p: False)  # missing: fine
    path.write_text('<p>my own page</p>')
    with pytest.raises(ValueError, match=r'^OUT/index.html .*index.html exists and was not '
                       r'written by mp3d-x; it is not replaced'):
        check_replaceable(str(path), what='OUT/index.html', tool='mp3d-x',
                          recognise=lambda p: 'generator' in open(p).read())
    path.write_text('<meta name="generator">')
    check_replaceable(str(path), recognise=lambda p: 'generator' in open(p).read())
    with pytest.raises(ValueError, match='exists and was not written'):
        check_replaceable(str(path))  # no recogniser: no file is the writer's


def test_check_output_path_kinds(tmp_path):
    (tmp_path / 'a_file').write_text('keep')
    (tmp_path / 'a_folder').mkdir()
    check_output_path(str(tmp_path / 'new.json'), '--summary')
    check_output_path(str(tmp_path / 'a_folder'), '--plot-dir', kind='folder')
    for path, kind, pattern in [
            ('a_folder', 'file', '--x .*a_folder is a folder; give a file name'),
            ('a_file', 'folder', '--x .*a_file is a file; give a folder'),
            ('a_file/sub/out.json', 'file', r'--x .*out.json cannot be created: .*a_file is a '
             'file')]:
        with pytest.raises(ValueError, match=pattern):
            check_output_path(str(tmp_path / path), '--x', kind)
    assert (tmp_path / 'a_file').read_text() == 'keep'


def test_atomic_write_names_the_destination_on_a_read_only_folder(tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system', str(tmp_path / '.x.partial'))

    monkeypatch.setattr(tempfile, 'mkstemp', read_only)
    with pytest.raises(OSError) as error:
        with atomic_write(str(tmp_path / 'summary.json')):
            pass
    assert error.value.filename == str(tmp_path / 'summary.json')
    assert error.value.errno == errno.EROFS


def test_staged_output_dir_replaces_earlier_results_exactly(tmp_path):
    out = tmp_path / 'out'
    _commit(out, {'result.json': 'old', 'overlays/old_1.png': 'png', 'overlays/old_2.png': 'p'})
    staged = StagedOutputDir(str(out), overwrite=True)
    os.mkdir(os.path.join(staged.path, 'overlays'))
    with open(os.path.join(staged.path, 'result.json'), 'w') as handle:
        handle.write('new')
    staged.commit()
    assert (out / 'result.json').read_text() == 'new' and _entries(out / 'overlays') == []
    assert _entries(tmp_path) == ['out']


@pytest.mark.parametrize('exchange', [True, False])
def test_commit_never_leaves_the_destination_missing(tmp_path, monkeypatch, exchange):
    """The second step of the commit fails (a kill, simulated): --out is still there with the
    earlier results (swapped in one step, or put back)."""
    out = tmp_path / 'out'
    _commit(out, {'result.json': 'old'})
    earlier = _tree(out)
    if not exchange:
        monkeypatch.setattr(safe_files, '_exchange', lambda a, b: False)
    staged = StagedOutputDir(str(out), overwrite=True)
    with open(os.path.join(staged.path, 'result.json'), 'w') as handle:
        handle.write('new')

    real_replace, staged_path = os.replace, staged.path

    def killed(src, dst):  # the manifest is written as before; the folder move is cut
        if src == staged_path:
            raise _Interrupted()
        real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', killed)
    if exchange:
        staged.commit()  # one atomic swap: os.replace is not needed
        assert (out / 'result.json').read_text() == 'new'
    else:
        with pytest.raises(_Interrupted):
            staged.commit()
        assert _tree(out) == earlier
    monkeypatch.undo()
    assert _entries(tmp_path) == ['out']


def test_next_run_restores_results_left_aside_by_a_kill(tmp_path):
    """The state a SIGKILL between the two renames leaves: no --out, the earlier results in
    the hidden .previous folder, a staging folder; the next run puts them back."""
    out = tmp_path / 'out'
    _commit(out, {'result.json': 'old'})
    earlier = _tree(out)
    (tmp_path / '.out.abc.previous').mkdir()
    os.rename(out, tmp_path / '.out.abc.previous' / 'results')
    with pytest.warns(UserWarning, match=r'out was missing after an interrupted run: restored '
                      r'the earlier results from .*\.out\.abc\.previous'):
        staged = StagedOutputDir(str(out), overwrite=True)
    assert _tree(out) == earlier and staged.restored is not None
    staged.discard()
    assert _entries(tmp_path) == ['out']


def test_exchange_swaps_two_folders(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    (tmp_path / 'a' / 'x').write_text('a')
    if not safe_files._exchange(str(tmp_path / 'a'), str(tmp_path / 'b')):
        pytest.skip('renameat2(RENAME_EXCHANGE) is not available here')
    assert _entries(tmp_path / 'b') == ['x'] and _entries(tmp_path / 'a') == []


def test_staged_output_dir_failure_keeps_earlier_results(tmp_path):
    out = tmp_path / 'out'
    _commit(out, {'result.json': 'old'})
    with pytest.raises(_Interrupted):
        with StagedOutputDir(str(out), overwrite=True) as staged:
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
