"""The index page of a batch of reports: one sortable row per volume.

:func:`write_html_index` writes a self-contained page (no network, no side files): one row
per volume with a relative link to its report, its number of candidates and best score, and
a note; a click on a header sorts by it (a second click reverses).
"""
import math
import os
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union
from urllib.parse import quote

from ...utils.safe_files import atomic_write, check_replaceable
from .html_page import escape as _e
from .html_page import format_number as _fmt
from .html_page import html_page, sort_value, sortable_header

__all__ = ['HtmlIndexEntry', 'INDEX_GENERATOR', 'render_html_index', 'check_html_index_path',
           'write_html_index']

#: The ``<meta name="generator">`` of an index page: how :func:`write_html_index` recognises
#: a page it wrote (and so may replace).
INDEX_GENERATOR = '<meta name="generator" content="mp3d_mmdet html index">'


@dataclass(frozen=True)
class HtmlIndexEntry:
    """One volume of a batch index page.

    Attributes:
        name: the volume's name.
        report: its report file, relative to the index page's folder (an
            absolute path is made relative); None = no link (e.g. a failed volume).
        num_candidates: candidates found (None: unknown / failed).
        best_score: the best candidate's score (None or NaN: no candidate).
        note: free text shown in a last column (e.g. an error message).
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
        entries: one per volume, in the initial row order;
            a tuple is ``(name, report, num_candidates, best_score[, note])``.
        title: page title.
        index_dir: the index page's folder (absolute report paths are made relative
            to it).

    Returns:
        The HTML document (self-contained; only links to the reports).
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
            f'<td data-value="{sort_value(e.num_candidates)}">{_fmt(e.num_candidates)}</td>'
            f'<td data-value="{sort_value(score)}">{_fmt(score, 3)}</td>'
            f'<td>{_e(e.note)}</td></tr>')
    if not rows:
        rows.append('<tr class="empty"><td colspan="4">No volumes</td></tr>')
    total = sum(e.num_candidates or 0 for e in entries)
    body = (f'<header><h1>{_e(title)}</h1><p id="summary">{len(entries)} volume'
            f'{"s" if len(entries) != 1 else ""}, {total} candidates</p></header>\n<main>\n'
            f'<table id="volumes">{sortable_header(_INDEX_COLUMNS)}<tbody>{"".join(rows)}'
            '</tbody></table>\n</main>')
    return html_page(title, body, "makeSortable(document.getElementById('volumes'));",
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
        entries: ``(name, report, num_candidates,
            best_score[, note])`` per volume (:class:`HtmlIndexEntry`).
        path: the index ``.html`` file; its folder must exist.
        title: page title.

    Raises:
        ValueError: ``path`` exists and is not an index page this function wrote (one line).
    """
    check_html_index_path(path)
    text = render_html_index(entries, title, osp.dirname(osp.abspath(path)))
    with atomic_write(path, encoding='utf-8') as handle:
        handle.write(text)
