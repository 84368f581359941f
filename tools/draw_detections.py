#!/usr/bin/env python
"""``python tools/draw_detections.py ...`` from a checkout = the ``mp3d-draw-detections`` command
(:mod:`mp3d_mmdet.cli.draw_detections`)."""
import os.path as osp
import runpy
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
runpy.run_module('mp3d_mmdet.cli.draw_detections', run_name='__main__', alter_sys=True)
