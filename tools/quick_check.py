#!/usr/bin/env python
"""``python tools/quick_check.py CONFIG ...`` from a checkout = the ``mp3d-quick-check``
command (:mod:`mp3d_mmdet.cli.quick_check`)."""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
runpy.run_module('mp3d_mmdet.cli.quick_check', run_name='__main__', alter_sys=True)
