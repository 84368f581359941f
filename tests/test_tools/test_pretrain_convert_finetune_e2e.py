"""The supervised 3D pre-training end to end through mmdet's runner, tiny:

1. pre-train the COCO 3-slice config (RGBToSlices, 80 classes, CocoMetric) for one epoch
   on a generated COCO-format set (pycocotools json + RGB PNGs), data root via COCO_ROOT,
   with mmdet's tools/train.py (the script ``mim train mmdet`` runs);
2. convert its checkpoint to 9 slices with mp3d-convert-pretraining-checkpoint (its ``main``,
   in this process: the CLI's own tests are in test_cli/);
3. train the DeepLesion "2x with COCO pre-training" config on generated DeepLesion-format
   data from the converted weights (``load_from``), and check the weights the runner
   loaded against the converted and the pre-training checkpoints tensor by tensor.

The configs are the real ones with tiny-width overrides (64 px, 8 base channels, one block
per stage, GN with 4 groups), as in test_train_test_e2e.py.
"""
import os
import os.path as osp
import subprocess
import sys

import mmdet
import torch

from helpers.tiny_coco import tiny_coco_2017
from helpers.tiny_mp3d import tiny_mp3d_model
from mp3d_mmdet.cli import convert_pretraining_checkpoint
from mp3d_mmdet.models.necks.group_transform import resample_slice_weights
from mp3d_mmdet.synthetic import make_synthetic_deeplesion

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
DROPPED = ['roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias',
           'roi_head.bbox_head.fc_reg.weight', 'roi_head.bbox_head.fc_reg.bias']

TINY_MODEL = tiny_mp3d_model(model_extra="""
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100), rcnn=dict(score_thr=0.0))""") + """
randomness = dict(seed=0)
"""

# Records the weights the runner holds when training starts (after `load_from`).
CAPTURE_HOOK = """
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class CaptureLoadedWeights(Hook):
    def __init__(self, out_file):
        self.out_file = out_file

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                   self.out_file)
"""


def pretrain_config(work_dir: str) -> str:
    return f"""
_base_ = {osp.join(REPO, 'configs', 'mp3d_fpn_coco_pretrain_3slice_6x.py')!r}
work_dir = {work_dir!r}
{TINY_MODEL}
train_pipeline = _base_.train_pipeline
train_pipeline[3].scale = (64, 64)
test_pipeline = _base_.test_pipeline
test_pipeline[2].scale = (64, 64)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1))
"""


def finetune_config(work_dir: str, load_from: str, capture: str) -> str:
    return f"""
_base_ = {osp.join(REPO, 'configs', 'mp3d_fpn_deeplesion_2x_coco-pretrain.py')!r}
custom_imports = dict(imports=['mp3d_mmdet', 'capture_loaded_weights'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='CaptureLoadedWeights', out_file={capture!r})]
load_from = {load_from!r}
work_dir = {work_dir!r}
{TINY_MODEL}
train_pipeline = _base_.train_pipeline
train_pipeline[2].scales = [(56, 56), (64, 64)]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=1, val_interval=2)  # training only
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(save_best=None))
"""


def run(args, cwd, env=None) -> str:
    # One OpenMP thread: the tiny models gain nothing from more, and on a loaded machine
    # spinning OpenMP threads make every op up to ~100x slower.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1',
               **(env or {}))
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          encoding='utf-8', errors='replace', timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    return output


def test_pretrain_convert_finetune(tmp_path, capsys):
    # 1. pre-training on COCO-format data, the data root from the environment
    coco_root = tiny_coco_2017(tmp_path / 'coco')
    pre_dir = tmp_path / 'pretrain'
    (tmp_path / 'pretrain.py').write_text(pretrain_config(str(pre_dir)))
    out = run([sys.executable, TRAIN, str(tmp_path / 'pretrain.py')], cwd=tmp_path,
              env=dict(COCO_ROOT=coco_root))
    assert f'Using env variable `COCO_ROOT` with value of {coco_root}' in out
    assert 'Epoch(train) [1][2/2]' in out  # 4 images, 2 per batch
    assert 'coco/bbox_mAP:' in out  # CocoMetric on the val split
    pretrained = pre_dir / 'epoch_1.pth'
    src = torch.load(pretrained, map_location='cpu', weights_only=True)
    assert len(src['meta']['dataset_meta']['classes']) == 80
    src = src['state_dict']
    assert src['neck.0.convs.0.weight'].shape == (32, 3, 1, 1)
    assert src['roi_head.bbox_head.fc_cls.weight'].shape == (81, 32)

    # 2. conversion to 9 slices with the CLI
    converted = tmp_path / 'pretrained' / 'mp3d_fpn_coco_3slice_to_9slice.pth'
    assert convert_pretraining_checkpoint.main(
        [str(pretrained), str(converted), '--num-slices', '9']) == 0
    assert (f'MP3D FPN, GTM slices [3, 3, 3, 3], 80 classes -> {converted}: 9 slices'
            in capsys.readouterr().out)
    conv = torch.load(converted, map_location='cpu', weights_only=True)['state_dict']
    assert set(src) - set(conv) == set(DROPPED)

    # 3. DeepLesion-format fine-tuning from the converted weights
    data_root = tmp_path / 'deeplesion'
    make_synthetic_deeplesion(str(data_root), num_patients=4, seed=1, image_size=64,
                              progress=False)
    (tmp_path / 'capture_loaded_weights.py').write_text(CAPTURE_HOOK)
    capture = tmp_path / 'loaded.pth'
    (tmp_path / 'finetune.py').write_text(finetune_config(
        str(tmp_path / 'finetune'), str(converted), str(capture)))
    out = run([sys.executable, TRAIN, str(tmp_path / 'finetune.py')], cwd=tmp_path,
              env=dict(PYTHONPATH=str(tmp_path), DEEPLESION_ROOT=str(data_root) + os.sep))
    assert f'Load checkpoint from {converted}' in out
    # mmengine lists what did not match: only the dropped classifier, nothing unexpected
    assert 'missing keys in source state_dict: ' + ', '.join(DROPPED) in out
    assert 'unexpected key' not in out and 'size mismatch' not in out
    assert 'Epoch(train) [1]' in out and (tmp_path / 'finetune' / 'epoch_1.pth').is_file()

    loaded = torch.load(capture, map_location='cpu', weights_only=True)
    assert set(loaded) - set(conv) == set(DROPPED)
    assert loaded['roi_head.bbox_head.fc_cls.weight'].shape == (2, 32)  # lesion + background
    for key, value in conv.items():
        assert torch.equal(loaded[key], value), key
        if key.startswith('neck.0.convs.'):  # the GTM: 3 -> 9 slices
            assert value.shape == (src[key].shape[0], 9, 1, 1)
            assert torch.equal(value, resample_slice_weights(src[key], 9))
        else:  # backbone, FPN, RPN, shared fcs: the pre-trained tensors
            assert torch.equal(value, src[key]), key
    assert any(k.startswith('backbone.layer4.') for k in conv)
    assert any(k.startswith('roi_head.bbox_head.shared_fcs.') for k in conv)
