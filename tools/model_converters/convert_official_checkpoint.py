#!/usr/bin/env python
"""``python tools/model_converters/convert_official_checkpoint.py SRC DST [--num-slices N]
[--num-classes K]`` from a checkout = the ``mp3d-convert-official-checkpoint`` command
(:mod:`mp3d_mmdet.cli.convert_official_checkpoint`, over
:mod:`mp3d_mmdet.converters.official_mp3d`)."""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..'))
runpy.run_module('mp3d_mmdet.cli.convert_official_checkpoint', run_name='__main__',
                 alter_sys=True)
