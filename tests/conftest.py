"""Shared test set-up: the shared helpers (tests/helpers) importable, headless plotting, and
mark the tests whose assertions depend on the values a network computes."""
import os
import sys

import matplotlib
import pytest

matplotlib.use('Agg')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: Test files (paths under tests/, or folders ending in '/') whose assertions depend on values
#: a network computes -- trained (the model must find a lesion) or not (two code paths must
#: agree within a tolerance). They get the ``cpu_numerics`` marker, and tools/run_tests.sh runs
#: them again under other CPU kernel settings (ATEN_CPU_CAPABILITY): they must hold on every
#: CPU, not only on the one they were written on. Tests that train only to exercise mechanics
#: (checkpoint files, resuming, schedules, logs) assert nothing a kernel can change.
CPU_NUMERICS = ('test_models/', 'test_converters/', 'test_volume/test_inference/test_detection.py',
                'test_volume/test_inference/test_detector.py',
                'test_volume/test_inference/test_precision.py')


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        path = os.path.relpath(str(item.fspath), tests_dir)
        if any(path == entry or path.startswith(entry) for entry in CPU_NUMERICS):
            item.add_marker(pytest.mark.cpu_numerics)
