"""The FROC plot is written as a non-empty PNG without touching pyplot's global backend."""
import numpy as np

from mp3d_mmdet.evaluation.functional import froc_curve, plot_froc_curves


def test_plot_written_as_png(tmp_path):
    boxes = [np.array([[0, 0, 9, 9, 0.9], [50, 50, 59, 59, 0.8]]), np.zeros((0, 5))]
    gts = [np.array([[0, 0, 9, 9]]), np.array([[20, 20, 29, 29]])]
    curve = froc_curve(boxes, gts)
    path = tmp_path / 'sub' / 'froc.png'
    plot_froc_curves({'all': curve, 'subset': curve}, str(path))
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(data) > 10_000  # axes, two curves, labels
