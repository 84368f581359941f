#!/usr/bin/env python
"""``python tools/model_converters/convert_pretraining_checkpoint.py SRC DST --num-slices N``
from a checkout = the ``mp3d-convert-pretraining-checkpoint`` command
(:mod:`mp3d_mmdet.cli.convert_pretraining_checkpoint`, over :mod:`mp3d_mmdet.converters`)."""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
runpy.run_module('mp3d_mmdet.cli.convert_pretraining_checkpoint', run_name='__main__',
                 alter_sys=True)
