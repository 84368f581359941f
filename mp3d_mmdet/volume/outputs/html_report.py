"""The self-contained HTML report of a whole-volume detection, read as a radiologist would.

:func:`write_html_report` writes ONE ``.html`` file that needs nothing else (no network, no
side files): inline CSS and JavaScript, the slices embedded as base64 JPEGs of HU coded on 8
bits (:mod:`.html_slices`: encoding, precision and size rule). It shows

* patient and study identity (``#identity``: name, ID, sex, birth date, study date and
  description, accession, series number and description, modality of a DICOM series, or a
  NIfTI description; "no patient or study identity" otherwise), from
  :attr:`CTVolume.metadata`;
* the scan, axial slice by axial slice, scrolled with the slider, the mouse wheel over the
  image (down = next slice), the arrow keys (Up/Right = next, Down/Left = previous), Page
  Up/Down (10 slices), Home/End. The slice is shown as stored on the axial grid (``LPS``:
  patient left on the image's right, anterior up -- the radiological view), with its
  physical aspect ratio (``X * sx`` by ``Y * sy``), the patient side on each edge
  (``#orient-left/right/top/bottom``: R, L, A, P) and a scale bar (``#scale-bar``, a round
  length near a quarter of the image width, labelled in mm or cm);
* a display window menu (``#window``): :data:`~.html_slices.WINDOW_PRESETS` (soft tissue
  W 400 / L 40 first, lung, bone, brain) and the input's own DICOM window (``input``;
  disabled, "input: none", when the series has none), applied in the browser;
* every candidate as a box labelled ``#id score`` on every slice it has a box on
  (:attr:`CandidateRegion.slice_boxes`), colour :data:`BOX_RGB`; the selected candidate in
  :data:`SELECTED_RGB`; show/hide the boxes (``#show-boxes``) and their labels
  (``#show-labels``), and a score threshold slider (``#score-thr``, 0-1): candidates whose
  highest score is below it are neither drawn nor listed (their rows get ``below-thr``);
* a table of the candidates (id, max / mean score, first-last slice, best slice, number of
  slices; sizes named once: **Best-slice box** = long x short side of the box on the best
  slice, **3D box** = x x y x z extent of the box over all its slices, both in mm; centre in
  LPS mm). It fits a 1366 px wide window beside the 640 px view, sorts by a click on a
  header (a second click reverses); a click on a row (or Enter on it, or a click on a box in
  the image) selects that candidate and shows its best slice;
* the run's metadata: identity, input path, format, DICOM series, stored and axial-grid
  geometry, model, detector score threshold, linking settings, warnings and timings.

**DOM hooks** (for tests and scripting): ``document.body.dataset.slice`` = the slice shown
(0-based axial index), ``document.body.dataset.rendered`` = the slice whose picture and
boxes are drawn on the canvas (equal to ``slice`` once its image has decoded),
``document.body.dataset.window`` = the window drawn, ``centre/width`` HU,
``document.body.dataset.selected`` = the selected candidate id (empty when none); the
visible slice number is the text of ``#slice-number``; the canvas is ``#view`` (CSS size
``canvas.style.width/height``; axial-grid pixel ``(x, y)``, centres at integers, is drawn
at ``((x + 0.5) * W_css / X, (y + 0.5) * H_css / Y)``); table rows are
``#candidates tbody tr`` with ``data-candidate`` (id) and ``data-best`` (best slice).
"""
import json
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...utils.safe_files import atomic_write
from .html_page import escape as _e
from .html_page import finite_or_none as _finite
from .html_page import format_number as _fmt
from .html_page import format_vector as _fmt_vector
from .html_page import html_page, script_json, sort_value, sortable_header, template
from .html_slices import WINDOW_PRESETS, ReportSlices, display_code_hu, encode_report_slices
from .regions import CandidateRegion, candidate_regions
from ..inference.detection import VolumeDetectionResult

__all__ = ['BOX_RGB', 'SELECTED_RGB', 'input_window', 'render_html_report', 'write_html_report']

#: Colour (R, G, B) of the candidate boxes drawn in the report.
BOX_RGB: Tuple[int, int, int] = (255, 48, 48)
#: Colour (R, G, B) of the selected candidate's box.
SELECTED_RGB: Tuple[int, int, int] = (255, 224, 0)
_OPPOSITE = dict(L='R', R='L', A='P', P='A', S='I', I='S')
#: Identity fields of :attr:`CTVolume.metadata` shown, in order, with their labels.
_IDENTITY_FIELDS = (('PatientName', 'patient'), ('PatientID', 'ID'),
                    ('PatientSex', 'sex'), ('PatientBirthDate', 'born'),
                    ('StudyDate', 'study date'), ('StudyDescription', 'study'),
                    ('AccessionNumber', 'accession'), ('SeriesNumber', 'series number'),
                    ('SeriesDescription', 'series'), ('Modality', 'modality'),
                    ('Description', 'description'))


def _person_name(value: str) -> str:
    """A DICOM person name ``Family^Given^Middle^Prefix^Suffix`` as ``Family, Given Middle``."""
    parts = [p.strip() for p in value.split('^')]
    given = ' '.join(p for p in parts[1:3] if p)
    return ', '.join(p for p in (parts[0], given) if p) or value


def _identity_rows(metadata: Dict[str, str]) -> List[Tuple[str, str]]:
    """``(label, text)`` of the identity fields the input has (dates as YYYY-MM-DD)."""
    rows = []
    for key, label in _IDENTITY_FIELDS:
        value = metadata.get(key, '')
        if key == 'PatientName' and value:
            value = _person_name(value)
        elif key.endswith('Date') and re.fullmatch(r'\d{8}', value):
            value = f'{value[:4]}-{value[4:6]}-{value[6:]}'
        if value:
            rows.append((label, value))
    return rows


def input_window(metadata: Dict[str, str]) -> Optional[Tuple[float, float]]:
    """The input's own ``(centre, width)`` HU window (DICOM ``WindowCenter``/``WindowWidth``),
    None when it has none or it is not a number with width > 0."""
    try:
        centre, width = float(metadata['WindowCenter']), float(metadata['WindowWidth'])
    except (KeyError, ValueError):
        return None
    return (centre, width) if np.isfinite(centre) and np.isfinite(width) and width > 0 else None


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


def _metadata_html(result: VolumeDetectionResult, num_regions: int,
                   identity: Sequence[Tuple[str, str]]) -> str:
    volume = result.volume
    grid, stored = volume.geometry, volume.original_geometry
    sections = [('Patient and study', _kv_table([(k, _e(v)) for k, v in identity],
                                                'meta-identity') if identity else
                 '<p id="meta-identity">none in the input</p>')]
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
        ('window (DICOM)', _value_html(' / '.join(
            f'{k[6:]} {volume.metadata[k]}' for k in ('WindowCenter', 'WindowWidth')
            if k in volume.metadata))),
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


def _candidate_rows_html(regions: Sequence[CandidateRegion]) -> str:
    rows = []
    for r in regions:
        size = np.asarray(r.size_mm, np.float64).reshape(-1)
        cells = [
            (sort_value(r.candidate_id), f'#{int(r.candidate_id)}'),
            (sort_value(r.score), _fmt(float(r.score), 3)),
            (sort_value(r.mean_score), _fmt(float(r.mean_score), 3)),
            (sort_value(r.first_slice), f'{int(r.first_slice)}&ndash;{int(r.last_slice)}'),
            (sort_value(r.best_slice), str(int(r.best_slice))),
            (sort_value(r.last_slice - r.first_slice + 1),
             str(int(r.last_slice - r.first_slice + 1))),
            (sort_value(r.long_axis_mm),
             f'{_fmt(float(r.long_axis_mm), 1)} &times; {_fmt(float(r.short_axis_mm), 1)}'),
            (sort_value(float(np.prod(size))), ' &times; '.join(f'{v:.1f}' for v in size)),
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


def _window_options(metadata: Dict[str, str]) -> Tuple[str, Dict[str, List[float]]]:
    """The ``<option>``s of the window menu and ``value -> [centre, width]``."""
    windows = {name: [float(c), float(w)] for name, (c, w) in WINDOW_PRESETS.items()}
    options = [f'<option value="{_e(name)}">{_e(name)} (W {w:g} / L {c:g})</option>'
               for name, (c, w) in windows.items()]
    own = input_window(metadata)
    if own is None:
        options.append('<option value="input" disabled>input: none</option>')
    else:
        windows['input'] = [own[0], own[1]]
        options.append(f'<option value="input">input (W {own[1]:g} / L {own[0]:g})</option>')
    return ''.join(options), windows


def render_html_report(result: VolumeDetectionResult,
                       regions: Optional[Sequence[CandidateRegion]] = None,
                       title: Optional[str] = None,
                       slices: Optional[ReportSlices] = None,
                       view_size: int = 640) -> str:
    """The report page (module docstring) as one HTML string.

    Args:
        result: the detection result; ``result.volume.hu`` is ``(Z, Y, X)`` HU on the axial
            grid the boxes refer to.
        regions: the candidates to show (table order = this order); None =
            :func:`~mp3d_mmdet.volume.outputs.regions.candidate_regions` of ``result`` (all
            candidates, best first). A region's ``slice_boxes`` are drawn (on a slice the
            linking bridged: the 3D box's in-plane extent).
        title: page title; None = ``Lesion candidates: <input file name>``.
        slices: the ``Z`` slices from :func:`~.html_slices.encode_report_slices` (to reuse);
            None = encoded here with the defaults.
        view_size: CSS pixels of the longer side of the displayed slice.

    Returns:
        The HTML document.
    """
    volume = result.volume
    if regions is None:
        regions = candidate_regions(result)
    regions = list(regions)
    if slices is None:
        slices = encode_report_slices(volume.hu)
    num_slices = volume.num_slices
    if len(slices.images) != num_slices:
        raise ValueError(f'{len(slices.images)} encoded slices for a volume of {num_slices}')
    height, width = volume.slice_shape
    z_mm = volume.geometry.index_to_physical(
        np.stack([np.zeros(num_slices), np.zeros(num_slices), np.arange(num_slices)], 1))[:, 2]
    name = osp.basename(osp.normpath(volume.source_path)) if volume.source_path else 'volume'
    title = title if title is not None else f'Lesion candidates: {name}'
    axes = volume.geometry.orientation
    options, windows = _window_options(volume.metadata)
    data = dict(width=width, height=height, spacing=[float(s) for s in volume.spacing],
                view_size=int(view_size), z_mm=[round(float(v), 3) for v in z_mm],
                box_rgb=list(BOX_RGB), selected_rgb=list(SELECTED_RGB),
                code_hu=[round(float(v), 2) for v in display_code_hu()], windows=windows,
                candidates=[_region_record(r) for r in regions])
    best = max((float(r.score) for r in regions), default=None)
    sx, sy, sz = volume.spacing
    summary = (f'{len(regions)} candidate{"s" if len(regions) != 1 else ""}'
               + (f', best score {best:.3f}' if best is not None else '')
               + f' &middot; {width} x {height} x {num_slices} voxels, '
               f'{sx:.3g} x {sy:.3g} x {sz:.3g} mm &middot; {_e(volume.source_path)}')
    identity = _identity_rows(volume.metadata)
    identity_text = (' &middot; '.join(f'<span class="id-{_e(k.replace(" ", "-"))}">{_e(k)}: '
                                       f'<b>{_e(v)}</b></span>' for k, v in identity)
                     if identity else f'no patient or study identity in the input '
                     f'({_e(volume.source_format)})')
    orient = dict(left=_OPPOSITE[axes[0]], right=axes[0], top=_OPPOSITE[axes[1]],
                  bottom=axes[1])
    letters = ''.join(f'<span class="orient" id="orient-{side}" title="patient side">'
                      f'{letter}</span>' for side, letter in orient.items())
    body = f"""<header><h1>{_e(title)}</h1><p id="identity">{identity_text}</p>
<p id="summary">{summary}</p></header>
<main>
<div class="layout">
<div class="viewer">
<div id="view-wrap"><canvas id="view" width="{width}" height="{height}"></canvas>{letters}
<div id="scale"><div id="scale-bar"></div><span id="scale-label"></span></div></div>
<div class="controls">
<button id="prev" type="button" title="previous slice">&#9664;</button>
<input id="slider" type="range" min="0" max="{num_slices - 1}" step="1" value="0"
 aria-label="axial slice">
<button id="next" type="button" title="next slice">&#9654;</button>
<span>slice <b id="slice-number">0</b> / {num_slices - 1} &middot; z <span id="slice-z"></span>
 mm</span>
</div>
<div class="controls" id="display">
<label>window <select id="window" aria-label="display window">{options}</select></label>
<label><input type="checkbox" id="show-boxes" checked> boxes</label>
<label><input type="checkbox" id="show-labels" checked> labels</label>
<label>score &ge; <input id="score-thr" type="range" min="0" max="1" step="0.01" value="0"
 aria-label="lowest score shown"> <b id="score-thr-value">0.00</b></label>
</div>
<div class="slice-info" id="on-slice"></div>
<div class="hint">Scroll: mouse wheel on the image, arrow keys, Page Up/Down, Home/End.
 Click a row or a box to select a candidate. Axial slices seen from the feet
 (radiological view). Pictures: {slices.size[0]} x {slices.size[1]} px, HU coded on 8 bits
 (2.5 HU steps from -160 to 240 HU, coarser outside), JPEG quality {slices.quality}:
 a review aid, not a diagnostic display.</div>
</div>
<div class="side">
<h2>Candidates ({len(regions)})</h2>
<p class="sizes"><b>Best-slice box</b>: long &times; short side of the candidate's box on its
best slice; <b>3D box</b>: the box over all its slices (x &times; y &times; z). Both are box
extents in mm, not RECIST diameters.</p>
<div class="scroll"><table id="candidates">{sortable_header(_CANDIDATE_COLUMNS)}
{_candidate_rows_html(regions)}</table></div>
{_metadata_html(result, len(regions), identity)}
</div>
</div>
</main>
<script type="application/json" id="report-data">{script_json(data)}</script>
<script type="application/json" id="slice-data">{script_json(slices.images)}</script>"""
    return html_page(title, body, template('volume_viewer.js'))


def write_html_report(result: VolumeDetectionResult, path: str,
                      regions: Optional[List[CandidateRegion]] = None,
                      title: Optional[str] = None) -> None:
    """Write the self-contained report of one volume (module docstring) to ``path``.

    The file is written whole or not at all (:func:`~mp3d_mmdet.utils.safe_files.
    atomic_write`); its size follows :mod:`.html_slices`' size rule (a 300-slice scan: under
    8 MB).

    Args:
        result: the detection result (``volume.hu`` ``(Z, Y, X)``).
        path: the ``.html`` file; its folder must exist.
        regions: candidates to show, in table order; None =
            ``candidate_regions(result)`` (all, best first).
        title: page title; None = ``Lesion candidates: <input file name>``.
    """
    text = render_html_report(result, regions, title)
    with atomic_write(path, encoding='utf-8') as handle:
        handle.write(text)
