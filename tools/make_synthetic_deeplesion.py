#!/usr/bin/env python
"""``python tools/make_synthetic_deeplesion.py ...`` from a checkout = the
``mp3d-make-synthetic-deeplesion`` command (:mod:`mp3d_mmdet.cli.make_synthetic_deeplesion`)."""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
runpy.run_module('mp3d_mmdet.cli.make_synthetic_deeplesion', run_name='__main__', alter_sys=True)
