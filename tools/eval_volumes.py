#!/usr/bin/env python
"""``python tools/eval_volumes.py ...`` from a checkout = the ``mp3d-eval-volumes`` command
(:mod:`mp3d_mmdet.cli.eval_volumes`)."""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
runpy.run_module('mp3d_mmdet.cli.eval_volumes', run_name='__main__', alter_sys=True)
