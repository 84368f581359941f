"""Shared test set-up: make the helper modules in tests/ importable, headless plotting."""
import os
import sys

import matplotlib

matplotlib.use('Agg')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
