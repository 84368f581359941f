"""Checkpoint files: what a wrong file is, said in one line, before torch trips over it."""
import pytest
import torch

from mp3d_mmdet.utils.checkpoint_files import (CheckpointFileError, check_checkpoint_file,
                                               load_state_dict_file)


def _one_line(error) -> str:
    message = str(error.value)
    assert '\n' not in message
    return message


@pytest.mark.parametrize('content, expected', [
    (b'', r'an empty file \(0 bytes\)'),
    (b'epoch_12.pth\n', r"a text file starting with 'epoch_12.pth'"),
    (b'\x00\x11\x22garbage', r'binary data starting with 00 11 22'),
])
def test_not_a_checkpoint(tmp_path, content, expected):
    path = tmp_path / 'model.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointFileError, match=rf'^{path}: {expected}') as error:
        check_checkpoint_file(str(path))
    assert 'PyTorch checkpoint' in _one_line(error) or 'checkpoint (.pth' in _one_line(error)
    with pytest.raises(CheckpointFileError):
        load_state_dict_file(str(path))


def test_missing_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint file not found: .*nope.pth'):
        check_checkpoint_file(str(tmp_path / 'nope.pth'))
    with pytest.raises(CheckpointFileError, match='a folder, expected a checkpoint file'):
        check_checkpoint_file(str(tmp_path))


def test_truncated_checkpoint_is_named_as_such(tmp_path):
    full = tmp_path / 'full.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, str(full))
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(full.read_bytes()[:2000])
    check_checkpoint_file(str(cut))  # the head looks right
    with pytest.raises(CheckpointFileError, match=r'cut\.pth: cannot be read .*truncated\?') as e:
        load_state_dict_file(str(cut))
    _one_line(e)


def test_pickled_code_is_refused(tmp_path):
    class RunsCode:
        def __reduce__(self):
            return print, ('ran', )

    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'extra': RunsCode()}, str(path))
    with pytest.raises(CheckpointFileError, match=r'evil\.pth: cannot be read as a checkpoint '
                       'with weights_only=True'):
        load_state_dict_file(str(path))


def test_state_dict_forms(tmp_path):
    weights = {'module.backbone.w': torch.ones(2), 'module.neck.b': torch.zeros(1)}
    torch.save({'state_dict': weights, 'meta': {'epoch': 3}}, str(tmp_path / 'a.pth'))
    state_dict, meta = load_state_dict_file(str(tmp_path / 'a.pth'))
    assert list(state_dict) == ['backbone.w', 'neck.b'] and meta == {'epoch': 3}
    torch.save({'w': torch.ones(1)}, str(tmp_path / 'bare.pth'))
    state_dict, meta = load_state_dict_file(str(tmp_path / 'bare.pth'))
    assert list(state_dict) == ['w'] and torch.equal(state_dict['w'], torch.ones(1)) and not meta
    torch.save({'optimizer': {}, 'epoch': 3}, str(tmp_path / 'other.pth'))
    with pytest.raises(CheckpointFileError, match=r"holds a dict with keys \['optimizer', "
                       r"'epoch'\], no state dict"):
        load_state_dict_file(str(tmp_path / 'other.pth'))
    torch.save([1, 2], str(tmp_path / 'list.pth'))
    with pytest.raises(CheckpointFileError, match='holds list, no state dict'):
        load_state_dict_file(str(tmp_path / 'list.pth'))
