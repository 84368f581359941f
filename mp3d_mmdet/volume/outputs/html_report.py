"""Self-contained HTML reports of a whole-volume detection, and an index page for a batch.

:func:`write_html_report` writes ONE ``.html`` file that needs nothing else (no network, no
side files): inline CSS and JavaScript, the slices embedded as base64 JPEG images. It shows

* the scan, axial slice by axial slice, in a soft-tissue window (W 400 / L 40,
  :data:`~mp3d_mmdet.visualization.SOFT_TISSUE_WINDOW`), scrolled with the slider, the mouse
  wheel over the image (down = next slice), the arrow keys (Up/Right = next, Down/Left =
  previous), Page Up/Down (10 slices), Home/End. The slice is shown as stored on the axial
  grid (``LPS``: patient left on the image's right, anterior up -- the radiological view),
  with its physical aspect ratio (``X * sx`` by ``Y * sy``);
* every candidate as a box labelled ``#id score`` on every slice it has a box on
  (:attr:`CandidateRegion.slice_boxes`), colour :data:`BOX_RGB`; the selected candidate in
  :data:`SELECTED_RGB`;
* a table of the candidates (id, max / mean score, first-last slice, best slice, number of
  slices, the best-slice box's long x short sides and the 3D box's x x y x z extent in mm,
  centre in LPS mm; it fits a 1366 px wide window beside the 640 px view), sorted by a click on a
  header (a second click reverses); a click on a row (or Enter on it, or a click on a box in
  the image) selects that candidate and shows its best slice;
* display controls: show/hide the boxes (``#show-boxes``) and their labels
  (``#show-labels``), and a score threshold slider (``#score-thr``, 0-1): candidates whose
  highest score is below it are neither drawn nor listed (their table rows get the class
  ``below-thr``);
* the run's metadata: input path, format, DICOM series, stored and axial-grid geometry,
  model (config, checkpoint, device, ...), detector score threshold, linking settings,
  warnings and timings.

**Size rule.** Each slice is windowed to 8 bits and stored as a grey baseline JPEG (quality
:data:`JPEG_QUALITY` = 85) at its own resolution, shrunk by area averaging so that its longer
side is at most :data:`MAX_SLICE_SIDE` = 512 px (never enlarged; the browser scales the
picture to the view). The file is about ``num_slices x`` (JPEG size) ``x 4/3`` (base64) plus
a few tens of kB: a 512 x 512 slice of soft tissue with CT noise is 30-45 kB, so a 512 x
512 x 100 scan gives about 4-6 MB and a 300-slice scan about 12-18 MB.

**DOM hooks** (for tests and scripting): ``document.body.dataset.slice`` = the slice shown
(0-based axial index), ``document.body.dataset.rendered`` = the slice whose picture and
boxes are drawn on the canvas (equal to ``slice`` once its image has decoded),
``document.body.dataset.selected`` = the selected candidate id (empty when none); the
visible slice number is the text of ``#slice-number``; the canvas is ``#view`` (CSS size
``canvas.style.width/height``; axial-grid pixel ``(x, y)``, centres at integers, is drawn
at ``((x + 0.5) * W_css / X, (y + 0.5) * H_css / Y)``); table rows are
``#candidates tbody tr`` with ``data-candidate`` (id) and ``data-best`` (best slice).

:func:`write_html_index` writes an index page for a batch: one sortable row per volume with
a relative link to its report, its number of candidates and best score.
"""
import base64
import html
import json
import math
import os
import os.path as osp
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import cv2
import numpy as np

from ...utils.safe_files import atomic_write, check_replaceable
from ...utils.hu_window import SOFT_TISSUE_WINDOW, window_hu
from .regions import CandidateRegion, candidate_regions
from ..inference.detection import VolumeDetectionResult

__all__ = ['MAX_SLICE_SIDE', 'JPEG_QUALITY', 'BOX_RGB', 'SELECTED_RGB', 'HtmlIndexEntry',
           'encode_report_slices', 'render_html_report', 'write_html_report',
           'render_html_index', 'INDEX_GENERATOR', 'check_html_index_path', 'write_html_index']

#: Longest side (px) of an embedded slice image; larger slices are shrunk (area averaging).
MAX_SLICE_SIDE = 512
#: JPEG quality of the embedded slice images.
JPEG_QUALITY = 85
#: Colour (R, G, B) of the candidate boxes drawn in the report.
BOX_RGB: Tuple[int, int, int] = (255, 48, 48)
#: Colour (R, G, B) of the selected candidate's box.
SELECTED_RGB: Tuple[int, int, int] = (255, 224, 0)


def encode_report_slices(hu: np.ndarray,
                         window: Tuple[float, float] = SOFT_TISSUE_WINDOW,
                         max_side: int = MAX_SLICE_SIDE,
                         quality: int = JPEG_QUALITY) -> List[str]:
    """Window every axial slice and encode it as a base64 grey JPEG (module docstring).

    Args:
        hu (np.ndarray): ``(Z, Y, X)`` HU.
        window (tuple[float, float]): ``(low, high)`` HU mapped to black and white.
        max_side (int): the longer side of an encoded slice is at most this (px).
        quality (int): JPEG quality, 1-100.

    Returns:
        list[str]: ``Z`` base64 strings (no ``data:`` prefix), slice ``z`` at index ``z``.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f'hu must be a (Z, Y, X) volume, got shape {tuple(hu.shape)}')
    height, width = hu.shape[1:]
    factor = min(1.0, max_side / max(height, width))
    size = (max(1, int(round(width * factor))), max(1, int(round(height * factor))))
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    encoded = []
    for z in range(hu.shape[0]):
        grey = window_hu(hu[z], window)
        if factor < 1.0:
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode('.jpg', grey, params)
        if not ok:
            raise OSError(f'could not encode slice {z} as JPEG')
        encoded.append(base64.b64encode(data.tobytes()).decode('ascii'))
    return encoded


def _finite(value: Any, digits: int) -> Optional[float]:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _script_json(obj: Any) -> str:
    """JSON for a ``<script type="application/json">`` block (no ``</script>`` inside)."""
    text = json.dumps(obj, separators=(',', ':'), allow_nan=False)
    return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return '&ndash;'
    if isinstance(value, (float, np.floating)):
        return f'{float(value):.{digits}f}' if math.isfinite(value) else '&ndash;'
    return _e(value)


def _fmt_vector(values: Any, digits: int = 1) -> str:
    return '(' + ', '.join(f'{float(v):.{digits}f}' for v in np.asarray(values).reshape(-1)) + ')'


def _num_attr(value: Any) -> str:
    """A ``data-value`` for numeric sorting ('' sorts last)."""
    if value is None:
        return ''
    value = float(value)
    return repr(value) if math.isfinite(value) else ''


def _region_record(region: CandidateRegion) -> Dict[str, Any]:
    return dict(
        id=int(region.candidate_id), score=_finite(region.score, 4),
        best=int(region.best_slice), first=int(region.first_slice),
        last=int(region.last_slice),
        boxes={str(int(z)): [_finite(v, 2) for v in np.asarray(box, np.float64).reshape(4)]
               for z, box in sorted(region.slice_boxes.items())})


def _kv_table(rows: Sequence[Tuple[str, str]], table_id: str) -> str:
    body = ''.join(f'<tr><th scope="row">{_e(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return f'<table class="kv" id="{table_id}"><tbody>{body}</tbody></table>'


def _value_html(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return _e(', '.join(str(v) for v in value)) if value else '&ndash;'
    if isinstance(value, dict):
        return _e(json.dumps(value, default=str)) if value else '&ndash;'
    if value is None or value == '':
        return '&ndash;'
    return _e(value)


def _metadata_html(result: VolumeDetectionResult, num_regions: int) -> str:
    volume = result.volume
    grid, stored = volume.geometry, volume.original_geometry
    sections = []
    input_rows = [
        ('path', _e(volume.source_path)), ('format', _e(volume.source_format)),
        ('DICOM series UID', _value_html(volume.dicom_series_uid)),
        ('axial grid size (X, Y, Z)', _e(' x '.join(str(s) for s in grid.size))),
        ('axial grid spacing (mm)', _e(' x '.join(f'{s:.4g}' for s in grid.spacing))),
        ('axial grid origin (mm)', _e(_fmt_vector(grid.origin, 3))),
        ('axial grid orientation', _e(grid.orientation)),
        ('stored orientation', _e(stored.orientation)),
        ('stored size (i, j, k)', _e(' x '.join(str(s) for s in stored.size))),
        ('stored direction', _e(_fmt_vector(stored.direction, 4))),
        ('reoriented', 'yes' if volume.reoriented else 'no'),
        ('intensity (HU)', _e(', '.join(f'{k} {v:.0f}'
                                        for k, v in volume.intensity_stats.items()))),
    ]
    sections.append(('Input', _kv_table(input_rows, 'meta-input')))
    model_rows = [(str(k), _value_html(v)) for k, v in result.model.items()]
    sections.append(('Model', _kv_table(model_rows, 'meta-model')))
    settings = [('detector score threshold', _value_html(result.model.get('score_thr')))]
    settings += [(f'linking {k}', _value_html(v)) for k, v in result.linking.items()]
    settings += [('candidates linked', _e(len(result.candidates))),
                 ('candidates shown', _e(num_regions))]
    sections.append(('Detection settings', _kv_table(settings, 'meta-settings')))
    if result.warnings:
        warnings = '<ul id="warnings">' + ''.join(
            f'<li>{_e(w)}</li>' for w in result.warnings) + '</ul>'
    else:
        warnings = '<p id="warnings">none</p>'
    sections.append((f'Warnings ({len(result.warnings)})', warnings))
    timing_rows = [(k, f'{float(v):.3f} s') for k, v in result.timings.items()]
    if result.timings:
        timing_rows.append(('total', f'{sum(float(v) for v in result.timings.values()):.3f} s'))
    sections.append(('Timings', _kv_table(timing_rows, 'meta-timings')))
    return ''.join(f'<section class="meta"><h2>{_e(name)}</h2>{body}</section>'
                   for name, body in sections)


_CANDIDATE_COLUMNS = (
    # header, sort type, first direction, title
    ('ID', 'num', 'asc', 'candidate id (1 = best max score)'),
    ('Score', 'num', 'desc', 'highest per-slice score'),
    ('Mean', 'num', 'desc', 'mean per-slice score'),
    ('Slices', 'num', 'asc', 'first - last axial slice'),
    ('Best', 'num', 'asc', 'slice of the highest score'),
    ('N', 'num', 'desc', 'number of slices: last - first + 1'),
    ('Best-slice box (mm)', 'num', 'desc', 'long x short side of the box on the best slice '
     '(in-plane box extent, not RECIST; sorted by the long side)'),
    ('3D box (mm)', 'num', 'desc', 'extent x, y, z of the box over all its slices (sorted by '
     'volume)'),
    ('Centre LPS (mm)', None, None, 'centre of the 3D box, physical LPS mm'),
)


def _header_html(columns) -> str:
    cells = []
    for name, kind, first, title in columns:
        if kind is None:
            cells.append(f'<th scope="col" title="{_e(title)}">{_e(name)}</th>')
        else:
            cells.append(f'<th scope="col" class="sortable" tabindex="0" data-sort="{kind}" '
                         f'data-first="{first}" title="{_e(title)} (click to sort)" '
                         f'aria-sort="none">{_e(name)}<span class="arrow"></span></th>')
    return '<thead><tr>' + ''.join(cells) + '</tr></thead>'


def _candidate_rows_html(regions: Sequence[CandidateRegion]) -> str:
    rows = []
    for r in regions:
        size = np.asarray(r.size_mm, np.float64).reshape(-1)
        cells = [
            (_num_attr(r.candidate_id), f'#{int(r.candidate_id)}'),
            (_num_attr(r.score), _fmt(float(r.score), 3)),
            (_num_attr(r.mean_score), _fmt(float(r.mean_score), 3)),
            (_num_attr(r.first_slice), f'{int(r.first_slice)}&ndash;{int(r.last_slice)}'),
            (_num_attr(r.best_slice), str(int(r.best_slice))),
            (_num_attr(r.last_slice - r.first_slice + 1),
             str(int(r.last_slice - r.first_slice + 1))),
            (_num_attr(r.long_axis_mm),
             f'{_fmt(float(r.long_axis_mm), 1)} &times; {_fmt(float(r.short_axis_mm), 1)}'),
            (_num_attr(float(np.prod(size))), ' &times; '.join(f'{v:.1f}' for v in size)),
            (None, _e(_fmt_vector(r.center_lps_mm, 1))),
        ]
        tds = ''.join(f'<td data-value="{v}">{t}</td>' if v is not None else f'<td>{t}</td>'
                      for v, t in cells)
        rows.append(f'<tr tabindex="0" data-candidate="{int(r.candidate_id)}" '
                    f'data-best="{int(r.best_slice)}">{tds}</tr>')
    if not rows:
        rows.append(f'<tr class="empty"><td colspan="{len(_CANDIDATE_COLUMNS)}">'
                    'No candidates</td></tr>')
    return '<tbody>' + ''.join(rows) + '</tbody>'


def _template(name: str) -> str:
    """The text of a package data file under ``templates/`` (CSS and JavaScript of the pages)."""
    return resources.files(__package__).joinpath('templates', name).read_text(encoding='utf-8')


#: The ``<meta name="generator">`` of an index page: how :func:`write_html_index` recognises
#: a page it wrote (and so may replace).
INDEX_GENERATOR = '<meta name="generator" content="mp3d_mmdet html index">'


def _page(title: str, body: str, script: str, head: str = '') -> str:
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'{head}<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{_e(title)}</title>\n<style>\n{_template("report.css")}</style>\n'
            f'</head>\n<body>\n{body}\n'
            f'<script>\n{_template("sortable.js")}{script}</script>\n</body>\n</html>\n')


def render_html_report(result: VolumeDetectionResult,
                       regions: Optional[Sequence[CandidateRegion]] = None,
                       title: Optional[str] = None,
                       slices: Optional[Sequence[str]] = None,
                       view_size: int = 640) -> str:
    """The report page (module docstring) as one HTML string.

    Args:
        result (VolumeDetectionResult): the detection result; ``result.volume.hu`` is
            ``(Z, Y, X)`` HU on the axial grid the boxes refer to.
        regions (list[CandidateRegion] | None): the candidates to show (table order =
            this order); None = :func:`~mp3d_mmdet.volume.outputs.regions.candidate_regions`
            of ``result`` (all candidates, best first). A region's ``slice_boxes`` are drawn
            (on a slice the linking bridged: the 3D box's in-plane extent).
        title (str | None): page title; None = ``Lesion candidates: <input file name>``.
        slices (Sequence[str] | None): ``Z`` base64 JPEGs from :func:`encode_report_slices`
            (to reuse); None = encoded here with the defaults.
        view_size (int): CSS pixels of the longer side of the displayed slice.

    Returns:
        str: the HTML document.
    """
    volume = result.volume
    if regions is None:
        regions = candidate_regions(result)
    regions = list(regions)
    if slices is None:
        slices = encode_report_slices(volume.hu)
    num_slices = volume.num_slices
    if len(slices) != num_slices:
        raise ValueError(f'{len(slices)} encoded slices for a volume of {num_slices}')
    height, width = volume.slice_shape
    z_mm = volume.geometry.index_to_physical(
        np.stack([np.zeros(num_slices), np.zeros(num_slices), np.arange(num_slices)], 1))[:, 2]
    name = osp.basename(osp.normpath(volume.source_path)) if volume.source_path else 'volume'
    title = title if title is not None else f'Lesion candidates: {name}'
    data = dict(width=width, height=height, spacing=[float(s) for s in volume.spacing],
                view_size=int(view_size), z_mm=[round(float(v), 3) for v in z_mm],
                box_rgb=list(BOX_RGB), selected_rgb=list(SELECTED_RGB),
                candidates=[_region_record(r) for r in regions])
    best = max((float(r.score) for r in regions), default=None)
    sx, sy, sz = volume.spacing
    summary = (f'{len(regions)} candidate{"s" if len(regions) != 1 else ""}'
               + (f', best score {best:.3f}' if best is not None else '')
               + f' &middot; {width} x {height} x {num_slices} voxels, '
               f'{sx:.3g} x {sy:.3g} x {sz:.3g} mm &middot; {_e(volume.source_path)}')
    body = f"""<header><h1>{_e(title)}</h1><p id="summary">{summary}</p></header>
<main>
<div class="layout">
<div class="viewer">
<div id="view-wrap"><canvas id="view" width="{width}" height="{height}"></canvas></div>
<div class="controls">
<button id="prev" type="button" title="previous slice">&#9664;</button>
<input id="slider" type="range" min="0" max="{num_slices - 1}" step="1" value="0"
 aria-label="axial slice">
<button id="next" type="button" title="next slice">&#9654;</button>
<span>slice <b id="slice-number">0</b> / {num_slices - 1} &middot; z <span id="slice-z"></span>
 mm</span>
</div>
<div class="controls" id="display">
<label><input type="checkbox" id="show-boxes" checked> boxes</label>
<label><input type="checkbox" id="show-labels" checked> labels</label>
<label>score &ge; <input id="score-thr" type="range" min="0" max="1" step="0.01" value="0"
 aria-label="lowest score shown"> <b id="score-thr-value">0.00</b></label>
</div>
<div class="slice-info" id="on-slice"></div>
<div class="hint">Scroll: mouse wheel on the image, arrow keys, Page Up/Down, Home/End.
 Window W 400 / L 40. Click a row or a box to select a candidate.</div>
</div>
<div class="side">
<h2>Candidates ({len(regions)})</h2>
<p class="sizes">Best-slice box: the sides of the candidate's box on its best slice (long
&times; short); 3D box: the box over all its slices (x &times; y &times; z). Box extents, not
RECIST diameters.</p>
<div class="scroll"><table id="candidates">{_header_html(_CANDIDATE_COLUMNS)}
{_candidate_rows_html(regions)}</table></div>
{_metadata_html(result, len(regions))}
</div>
</div>
</main>
<script type="application/json" id="report-data">{_script_json(data)}</script>
<script type="application/json" id="slice-data">{_script_json(list(slices))}</script>"""
    return _page(title, body, _template('volume_viewer.js'))


def write_html_report(result: VolumeDetectionResult, path: str,
                      regions: Optional[List[CandidateRegion]] = None,
                      title: Optional[str] = None) -> None:
    """Write the self-contained report of one volume (module docstring) to ``path``.

    The file is written whole or not at all (:func:`~mp3d_mmdet.utils.safe_files.
    atomic_write`); its size follows the module docstring's size rule (about 4-6 MB for a
    512 x 512 x 100 scan).

    Args:
        result (VolumeDetectionResult): the detection result (``volume.hu`` ``(Z, Y, X)``).
        path (str): the ``.html`` file; its folder must exist.
        regions (list[CandidateRegion] | None): candidates to show, in table order; None =
            ``candidate_regions(result)`` (all, best first).
        title (str | None): page title; None = ``Lesion candidates: <input file name>``.
    """
    text = render_html_report(result, regions, title)
    with atomic_write(path, encoding='utf-8') as handle:
        handle.write(text)


@dataclass(frozen=True)
class HtmlIndexEntry:
    """One volume of a batch index page.

    Attributes:
        name (str): the volume's name.
        report (str | None): its report file, relative to the index page's folder (an
            absolute path is made relative); None = no link (e.g. a failed volume).
        num_candidates (int | None): candidates found (None: unknown / failed).
        best_score (float | None): the best candidate's score (None or NaN: no candidate).
        note (str): free text shown in a last column (e.g. an error message).
    """
    name: str
    report: Optional[str]
    num_candidates: Optional[int]
    best_score: Optional[float]
    note: str = ''


_INDEX_COLUMNS = (
    ('Volume', 'text', 'asc', 'volume name'),
    ('Candidates', 'num', 'desc', 'number of candidates'),
    ('Best score', 'num', 'desc', 'highest candidate score'),
    ('Note', 'text', 'asc', 'remarks'),
)


def _report_href(report: str, index_dir: str) -> str:
    if osp.isabs(report):
        report = osp.relpath(report, index_dir)
    return quote(report.replace(os.sep, '/'), safe="/-_.~!*'()")


def render_html_index(entries: Sequence[Union[HtmlIndexEntry, Tuple]], title: str = 'Lesion '
                      'detection reports', index_dir: str = '.') -> str:
    """The batch index page as one HTML string.

    Args:
        entries (Sequence[HtmlIndexEntry | tuple]): one per volume, in the initial row order;
            a tuple is ``(name, report, num_candidates, best_score[, note])``.
        title (str): page title.
        index_dir (str): the index page's folder (absolute report paths are made relative
            to it).

    Returns:
        str: the HTML document (self-contained; only links to the reports).
    """
    entries = [e if isinstance(e, HtmlIndexEntry) else HtmlIndexEntry(*e) for e in entries]
    rows = []
    for e in entries:
        score = None if e.best_score is None else float(e.best_score)
        if score is not None and not math.isfinite(score):
            score = None
        link = (f'<a href="{_e(_report_href(e.report, index_dir))}">{_e(e.name)}</a>'
                if e.report else _e(e.name))
        rows.append(
            f'<tr><td data-value="{_e(e.name)}">{link}</td>'
            f'<td data-value="{_num_attr(e.num_candidates)}">{_fmt(e.num_candidates)}</td>'
            f'<td data-value="{_num_attr(score)}">{_fmt(score, 3)}</td>'
            f'<td>{_e(e.note)}</td></tr>')
    if not rows:
        rows.append('<tr class="empty"><td colspan="4">No volumes</td></tr>')
    total = sum(e.num_candidates or 0 for e in entries)
    body = (f'<header><h1>{_e(title)}</h1><p id="summary">{len(entries)} volume'
            f'{"s" if len(entries) != 1 else ""}, {total} candidates</p></header>\n<main>\n'
            f'<table id="volumes">{_header_html(_INDEX_COLUMNS)}<tbody>{"".join(rows)}'
            '</tbody></table>\n</main>')
    return _page(title, body, "makeSortable(document.getElementById('volumes'));",
                 head=INDEX_GENERATOR + '\n')


def _is_index_page(path: str) -> bool:
    """Whether ``path`` is an index page :func:`write_html_index` wrote (its generator tag
    in the first 4 kB)."""
    with open(path, 'rb') as handle:
        return INDEX_GENERATOR.encode() in handle.read(4096)


def check_html_index_path(path: str, what: str = 'index page') -> None:
    """Refuse ``path`` for :func:`write_html_index` when it exists and is not an index page
    it wrote (the ownership rule, :func:`~mp3d_mmdet.utils.safe_files.check_replaceable`).

    Raises:
        ValueError: one line naming ``path``.
    """
    check_replaceable(path, what=what, recognise=_is_index_page, tool='mp3d_mmdet')


def write_html_index(entries: Sequence[Union[HtmlIndexEntry, Tuple]], path: str,
                     title: str = 'Lesion detection reports') -> None:
    """Write a self-contained, sortable index page of a batch's reports to ``path``.

    One row per volume: name (linked to its report, relative to ``path``'s folder), number of
    candidates, best score, note; a click on a header sorts by it. Written whole or not at
    all (:func:`~mp3d_mmdet.utils.safe_files.atomic_write`); an existing file is replaced
    only when it is such an index page (:data:`INDEX_GENERATOR`), never a page of the user's.

    Args:
        entries (Sequence[HtmlIndexEntry | tuple]): ``(name, report, num_candidates,
            best_score[, note])`` per volume (:class:`HtmlIndexEntry`).
        path (str): the index ``.html`` file; its folder must exist.
        title (str): page title.

    Raises:
        ValueError: ``path`` exists and is not an index page this function wrote (one line).
    """
    check_html_index_path(path)
    text = render_html_index(entries, title, osp.dirname(osp.abspath(path)))
    with atomic_write(path, encoding='utf-8') as handle:
        handle.write(text)
