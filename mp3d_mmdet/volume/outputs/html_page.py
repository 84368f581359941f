"""Building blocks of the self-contained HTML pages (report and batch index).

A page is one HTML string with its CSS (``templates/report.css``) and JavaScript
(``templates/sortable.js`` and the page's own script) inline; :func:`sortable_header` makes
the header row that ``makeSortable`` (``sortable.js``) sorts by a click. Cell values are
escaped with :func:`escape`; numeric cells carry a ``data-value`` (:func:`sort_value`) for
numeric sorting, where '' sorts last.
"""
import html
import json
import math
from importlib import resources
from typing import Any, Optional, Sequence, Tuple

import numpy as np

__all__ = ['escape', 'finite_or_none', 'script_json', 'format_number', 'format_vector',
           'sort_value', 'sortable_header', 'template', 'html_page']

#: One column of a sortable table: header text, sort type (``'num'``, ``'text'`` or None
#: = not sortable), first sort direction (``'asc'``/``'desc'``), tooltip.
Column = Tuple[str, Optional[str], Optional[str], str]


def escape(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def finite_or_none(value: Any, digits: int) -> Optional[float]:
    """``value`` rounded to ``digits`` decimals, None when NaN or infinite (JSON-safe)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def script_json(obj: Any) -> str:
    """JSON for a ``<script type="application/json">`` block (no ``</script>`` inside)."""
    text = json.dumps(obj, separators=(',', ':'), allow_nan=False)
    return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')


def format_number(value: Any, digits: int = 2) -> str:
    """A float with ``digits`` decimals, other values escaped; None/NaN -> an en dash."""
    if value is None:
        return '&ndash;'
    if isinstance(value, (float, np.floating)):
        return f'{float(value):.{digits}f}' if math.isfinite(value) else '&ndash;'
    return escape(value)


def format_vector(values: Any, digits: int = 1) -> str:
    """``(a, b, c)`` with ``digits`` decimals (not escaped: numbers only)."""
    return '(' + ', '.join(f'{float(v):.{digits}f}' for v in np.asarray(values).reshape(-1)) + ')'


def sort_value(value: Any) -> str:
    """A ``data-value`` for numeric sorting ('' sorts last)."""
    if value is None:
        return ''
    value = float(value)
    return repr(value) if math.isfinite(value) else ''


def sortable_header(columns: Sequence[Column]) -> str:
    """The ``<thead>`` of a table whose sortable columns ``makeSortable`` handles."""
    cells = []
    for name, kind, first, title in columns:
        if kind is None:
            cells.append(f'<th scope="col" title="{escape(title)}">{escape(name)}</th>')
        else:
            cells.append(f'<th scope="col" class="sortable" tabindex="0" data-sort="{kind}" '
                         f'data-first="{first}" title="{escape(title)} (click to sort)" '
                         f'aria-sort="none">{escape(name)}<span class="arrow"></span></th>')
    return '<thead><tr>' + ''.join(cells) + '</tr></thead>'


def template(name: str) -> str:
    """The text of a package data file under ``templates/``."""
    return resources.files(__package__).joinpath('templates', name).read_text(encoding='utf-8')


def html_page(title: str, body: str, script: str, head: str = '') -> str:
    """A whole document: ``body`` (HTML), then ``sortable.js`` and ``script`` (JavaScript);
    ``head``: more HTML in ``<head>`` (e.g. a ``<meta>`` tag)."""
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'{head}<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{escape(title)}</title>\n<style>\n{template("report.css")}</style>\n'
            f'</head>\n<body>\n{body}\n'
            f'<script>\n{template("sortable.js")}{script}</script>\n</body>\n</html>\n')
