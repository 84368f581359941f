"""Plot FROC curves to a PNG file (matplotlib's Agg canvas: no display, no pyplot state)."""
import os
import os.path as osp
from typing import Mapping, Sequence, Union

import numpy as np

from ...utils.safe_files import atomic_write
from .froc import DEFAULT_FPS, FROCCurve
from .froc_protocols import FROCProtocol

__all__ = ['plot_froc_curves']


def plot_froc_curves(curves: Mapping[str, FROCCurve], path: str,
                     fps: Sequence[float] = DEFAULT_FPS, title: str = 'FROC',
                     num_points: int = 1000,
                     protocol: Union[str, FROCProtocol] = 'deeplesion',
                     x_label: str = 'false positives per image') -> None:
    """Draw sensitivity against false positives per image (log2 axis) and save it as PNG.

    Args:
        curves: label -> curve. The first curve is drawn bold with markers at ``fps``; the
            others thin (e.g. the breakdown subsets).
        path: output ``.png`` file; parent folders are created; written whole or not at
            all (a temporary file renamed into place).
        fps: the FP rates marked on the first curve and spanning the x axis (all > 0).
        title: figure title.
        num_points: number of log-spaced FP rates at which each curve is drawn.
        protocol: how the curves are read (:mod:`.froc_protocols`), as in the report.
        x_label: the x axis label (per image, per sub-volume ...).
    """
    # the Agg canvas directly: headless, and the global pyplot backend is left untouched
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fps = np.asarray(fps, dtype=np.float64)
    if len(fps) == 0 or (fps <= 0).any():
        raise ValueError(f'fps must be non-empty and > 0 for the log axis, got {fps.tolist()}')
    x_min, x_max = fps.min() / 2, fps.max() * 2
    fig = Figure(figsize=(7, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # the curve as it is read (the protocol's rule) on a log grid: ~10^5 raw points need
    # not be drawn one by one
    grid = np.geomspace(x_min, x_max, num_points)
    for k, (label, curve) in enumerate(curves.items()):
        x, y = grid, curve.sens_at_fp(grid, protocol)
        if k == 0:
            sens = curve.sens_at_fp(fps, protocol)
            ax.plot(x, y, linewidth=2.2, color='black',
                    label=f'{label} ({curve.num_gts} lesions)')
            ax.plot(fps, sens, 'o', color='tab:red', zorder=3)
            for f, s in zip(fps, sens):
                ax.annotate(f'{100 * s:.1f}', (f, s), textcoords='offset points',
                            xytext=(0, 6), ha='center', fontsize=8)
        else:
            ax.plot(x, y, linewidth=1.0, alpha=0.8,
                    label=f'{label} ({curve.num_gts} lesions)')
    ax.set_xscale('log', base=2)
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(0.0, 1.0)
    ax.set_xticks(fps)
    ax.set_xticklabels([f'{f:g}' for f in fps])
    ax.set_xlabel(x_label)
    ax.set_ylabel('sensitivity')
    ax.set_title(title)
    ax.grid(True, which='major', alpha=0.4)
    ax.legend(loc='lower right', fontsize=8)
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    with atomic_write(path, 'wb') as handle:
        fig.savefig(handle, format='png', bbox_inches='tight')
