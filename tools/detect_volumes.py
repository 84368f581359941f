#!/usr/bin/env python
"""``python tools/detect_volumes.py ...`` from a checkout = the ``mp3d-detect-volumes`` command
(:mod:`mp3d_mmdet.cli.detect_volumes`)."""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
runpy.run_module('mp3d_mmdet.cli.detect_volumes', run_name='__main__', alter_sys=True)
