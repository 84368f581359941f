"""Prediction pickles: plain data loads, anything that could run code is refused unrun."""
import io
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from mp3d_mmdet.utils.pickle_allowlist import (UnsafePickleError, load_pickle_allowlisted,
                                               numpy_pickle_globals)


class _RunsCode:
    """Pickles as a call of os.system (what a hostile predictions file would contain)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _dump(obj, path, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, 'wb') as handle:
        pickle.dump(obj, handle, protocol=protocol)
    return str(path)


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_detection_dump_like_data_round_trips(tmp_path, protocol):
    data = [dict(img_id=3, img_path='a/001.png', ori_shape=(512, 512), scale_factor=(1.0, 1.0),
                 slice_interval=np.float64(2.5), flags={1, 2}, frozen=frozenset({'x'}),
                 instances=[dict(bbox=[1.0, 2.0, 30.0, 40.0], ignore_flag=0)],
                 pred_instances=OrderedDict(bboxes=torch.tensor([[1., 2., 3., 4.]]),
                                            scores=torch.tensor([0.5]),
                                            labels=torch.zeros(1, dtype=torch.int64)),
                 mask=np.arange(6, dtype=np.uint16).reshape(2, 3), size=torch.Size([2, 3]))]
    loaded = load_pickle_allowlisted(_dump(data, tmp_path / 'p.pkl', protocol))
    item = loaded[0]
    assert item['slice_interval'] == 2.5 and item['flags'] == {1, 2}
    assert torch.equal(item['pred_instances']['bboxes'], torch.tensor([[1., 2., 3., 4.]]))
    assert item['pred_instances']['labels'].dtype == torch.int64
    np.testing.assert_array_equal(item['mask'], data[0]['mask'])
    assert item['size'] == torch.Size([2, 3]) and item['instances'] == data[0]['instances']


def test_code_in_the_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / 'pwned'
    path = _dump([dict(img_id=0, pred_instances=_RunsCode(marker))], tmp_path / 'evil.pkl')
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refused to load: the pickle asks "
                       r"for posix\.system"):
        load_pickle_allowlisted(path)
    assert not marker.exists()


def test_code_hidden_in_a_tensor_storage_is_refused_and_not_run(tmp_path):
    # torch pickles a storage as a nested torch.save blob that torch itself reads with
    # weights_only=False; a hostile file can put anything in that blob.
    marker = tmp_path / 'pwned'
    blob = io.BytesIO()
    torch.save(_RunsCode(marker), blob, _use_new_zipfile_serialization=False)

    class _HostileStorage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (blob.getvalue(), )

    path = _dump([_HostileStorage()], tmp_path / 'evil_storage.pkl')
    with pytest.raises(Exception) as error:
        load_pickle_allowlisted(path)
    assert not marker.exists()
    assert 'evil_storage.pkl' in str(error.value) or 'system' in str(error.value)


def test_other_files_get_a_one_line_error(tmp_path):
    (tmp_path / 'text.pkl').write_text('not a pickle\n')
    (tmp_path / 'empty.pkl').write_bytes(b'')
    truncated = pickle.dumps(list(range(1000)))[:50]
    (tmp_path / 'cut.pkl').write_bytes(truncated)
    for name in ('text.pkl', 'empty.pkl', 'cut.pkl'):
        with pytest.raises(ValueError, match=rf'{name}: not a readable pickle') as error:
            load_pickle_allowlisted(str(tmp_path / name))
        assert '\n' not in str(error.value)


def test_numpy_globals_are_data_only():
    names = {obj.__name__ for obj in numpy_pickle_globals()}
    assert {'ndarray', 'dtype', '_reconstruct', 'scalar', '_frombuffer'} <= names
    assert not names & {'eval', 'exec', 'getattr', 'system', 'load', 'loads'}
