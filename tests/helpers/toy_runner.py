"""A two-parameter model, dataset and metric that run mmengine's training loop through the
plugin's runner in milliseconds (for checkpoint mechanics, not for numerics)."""
import itertools
import os
import subprocess
import sys
from typing import Optional

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from torch.utils.data import Dataset

_NAMES = itertools.count()


class ToyModel(BaseModel):
    """``y = w x + b`` with a squared-error loss."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((out - torch.stack(data_samples)) ** 2).mean())
        return [dict(pred=p) for p in out]


class ToyDataset(Dataset):
    metainfo = dict(classes=('lesion', ))

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.tensor([float(index), 1.0]),
                    data_samples=torch.tensor([float(index)]))


class RisingMetric(BaseMetric):
    """A score that improves at every validation (each one is a new best)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        self.calls += 1
        return dict(score=float(self.calls))


def toy_runner(work_dir: str, max_epochs: int, max_keep_ckpts: int = 1, resume: bool = False,
               save_best: Optional[str] = None, hook: str = 'CrashSafeCheckpointHook'):
    """A :class:`~mp3d_mmdet.engine.DeviceAwareRunner` training :class:`ToyModel` for
    ``max_epochs`` (2 iterations each), checkpointing every epoch with ``hook``."""
    from mp3d_mmdet.engine import DeviceAwareRunner
    loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=2)
    validation = dict(val_dataloader=loader, val_evaluator=[RisingMetric()],
                      val_cfg=dict()) if save_best else {}
    return DeviceAwareRunner(
        model=ToyModel(), work_dir=str(work_dir), train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        default_hooks=dict(checkpoint=dict(type=hook, interval=1,
                                           max_keep_ckpts=max_keep_ckpts,
                                           save_best=save_best, rule='greater')),
        default_scope='mmdet', resume=resume, experiment_name=f'toy_{next(_NAMES)}',
        randomness=dict(seed=0), **validation)


_KILLED_RUN = """
import os, os.path as osp, signal, sys
sys.path.insert(0, {tests!r})
from mmengine.fileio import LocalBackend
import mp3d_mmdet
from helpers.toy_runner import toy_runner
original = LocalBackend.put
def put(self, obj, filepath):
    if {name_part!r} in osp.basename(str(filepath)):
        original(self, obj[:len(obj) // 2], filepath)
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, obj, filepath)
LocalBackend.put = put
toy_runner({work_dir!r}, max_epochs=1, **{kwargs!r}).train()
toy_runner({work_dir!r}, max_epochs=3, resume=True, **{kwargs!r}).train()
"""


def train_and_sigkill_while_writing(work_dir: str, name_part: str = 'epoch_2',
                                    **kwargs) -> subprocess.CompletedProcess:
    """In a subprocess: train :func:`toy_runner` for one epoch, resume it for three, and
    SIGKILL the process halfway through writing the first file whose name contains
    ``name_part``. ``kwargs`` go to :func:`toy_runner` (``hook``, ``max_keep_ckpts`` ...)."""
    script = _KILLED_RUN.format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                name_part=name_part, work_dir=str(work_dir), kwargs=kwargs)
    return subprocess.run([sys.executable, '-c', script], capture_output=True,
                          encoding='utf-8', errors='replace',
                          timeout=300)
