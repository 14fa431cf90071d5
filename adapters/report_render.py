"""Charts and PDF pages of the audit reports (services/audit_report.py) with matplotlib: a PNG
chart for the HTML page, and an A4 PDF whose text is set in Noto Sans CJK JP (Debian's
fonts-noto-cjk), embedded as a Type 42 font subset so Japanese renders and can be copied and
searched (`pdftotext`) on any reader. Plain data in, bytes out: no service type is known here.

One weight only (bold would embed a second font: each embedding subsets a 16 MB font file,
about a second). matplotlib's font settings are process-wide: every drawing holds one lock (a report is rare,
and the server's other threads never draw)."""

from __future__ import annotations

import io
import threading
import unicodedata
from collections.abc import Sequence
from typing import Any

from matplotlib import font_manager, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

# Figures are made as Figure objects and saved by the Agg and PDF backends directly: pyplot and
# its GUI backends are never used in a server.

CJK_FAMILY = "Noto Sans CJK JP"
_LOCK = threading.Lock()
PAGE = (8.27, 11.69)  # A4 portrait, inches
MARGIN = 0.06  # of the page, each side
FONT_PT = 7.0  # table text
LINE = FONT_PT * 1.55 / 72 / PAGE[1]  # one table line, as a fraction of the page height
COLORS = ("#1f77b4", "#d62728", "#ff7f0e", "#2ca02c")


class FontMissing(RuntimeError):
    """The Japanese font is not installed (Debian: fonts-noto-cjk)."""


def cjk_font() -> str | None:
    """The file of Noto Sans CJK JP, or None when it is not installed."""
    try:
        return str(font_manager.findfont(font_manager.FontProperties(family=CJK_FAMILY),
                                         fallback_to_default=False))
    except ValueError:
        return None


def _rc(require_font: bool) -> dict[str, Any]:
    found = cjk_font()
    if found is None and require_font:
        raise FontMissing(f"{CJK_FAMILY} is not installed (Debian package fonts-noto-cjk)")
    return {"pdf.fonttype": 42,  # TrueType/Type 42, embedded (subset): real text, not outlines
            "font.family": [CJK_FAMILY, "DejaVu Sans"] if found else ["DejaVu Sans"],
            "svg.fonttype": "none", "axes.unicode_minus": False}


def _draw_chart(ax: Axes, title: str, labels: Sequence[str], series: dict[str, Sequence[int]]) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    xs = range(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], list(values), width, label=name,
               color=COLORS[i % len(COLORS)])
    ax.set_title(title, fontsize=10)
    step = max(1, len(labels) // 31)
    ax.set_xticks(list(xs)[::step], [lab[5:] for lab in labels][::step], rotation=90, fontsize=6)
    ax.tick_params(axis="y", labelsize=7)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlim(-0.6, max(0, len(labels) - 1) + 0.6)
    ax.grid(axis="y", linewidth=0.3, alpha=0.6)
    ax.legend(fontsize=7, loc="upper right")


def chart_png(title: str, labels: Sequence[str], series: dict[str, Sequence[int]]) -> bytes:
    """A grouped bar chart (one group per label, one bar per series) as PNG."""
    with _LOCK, rc_context(_rc(require_font=False)):
        fig = Figure(figsize=(9, 3.6), dpi=100)
        _draw_chart(fig.add_subplot(), title, labels, series)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()


def _width(s: str) -> int:
    """Display width in half-width cells: East Asian wide characters count twice."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _clip(s: str, cells: int) -> str:
    if _width(s) <= cells:
        return s
    out, used = "", 0
    for ch in s:
        w = _width(ch)
        if used + w > cells - 1:
            break
        out, used = out + ch, used + w
    return out + "…"


class _Pages:
    """A4 pages filled top to bottom; a new one when the next thing does not fit."""

    def __init__(self, pdf: PdfPages) -> None:
        self.pdf = pdf
        self.fig: Figure | None = None
        self.y = 0.0

    def need(self, height: float) -> Figure:
        if self.fig is None or self.y - height < MARGIN:
            self.flush()
            self.fig = Figure(figsize=PAGE)
            self.y = 1 - MARGIN
        return self.fig

    def text(self, s: str, size: float = FONT_PT, x: float = MARGIN, **kw: Any) -> None:
        height = size * 1.55 / 72 / PAGE[1]
        fig = self.need(height)
        self.y -= height
        fig.text(x, self.y, s, fontsize=size, va="bottom", **kw)

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None


def _columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[list[float], list[int]]:
    """Each column's x (page fraction) and width in cells, by its widest value (capped)."""
    cells = [min(60, max([_width(str(c))] + [_width(str(r[i])) for r in rows[:500]]))
             for i, c in enumerate(columns)]
    avail_cells = (1 - 2 * MARGIN) * PAGE[0] * 72 / (FONT_PT * 0.62)  # ~ half-width cells per line
    scale = min(1.0, avail_cells / max(1, sum(cells) + 2 * len(cells)))
    widths = [max(4, int((c + 2) * scale) - 1) for c in cells]
    xs, x = [], MARGIN
    for w in widths:
        xs.append(x)
        x += (w + 1) * FONT_PT * 0.62 / 72 / PAGE[0]
    return xs, widths


def _table(pages: _Pages, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
           note: str, none_text: str) -> None:
    pages.need(LINE * 6)  # a title never ends a page
    pages.y -= LINE
    pages.text(title, size=11)
    if note:
        pages.text(note, size=FONT_PT, color="#666666")
    if not rows:
        pages.text(none_text)
        return
    xs, widths = _columns(columns, rows)

    def line(values: Sequence[Any], header: bool = False) -> None:
        fig = pages.need(LINE)
        pages.y -= LINE
        for x, w, v in zip(xs, widths, values, strict=False):
            fig.text(x, pages.y, _clip(str(v), w), fontsize=FONT_PT, va="bottom",
                     color="#000000" if header else "#333333")
        fig.add_artist(Line2D([MARGIN, 1 - MARGIN], [pages.y - LINE * 0.2] * 2, linewidth=0.2,
                              color="#999999"))

    line(columns, header=True)
    for i, row in enumerate(rows):
        if pages.y - LINE < MARGIN and i:  # a new page repeats the header
            pages.flush()
            line(columns, header=True)
        line(row)


ChartData = tuple[str, Sequence[str], dict[str, Sequence[int]]]  # title, labels, series
TableData = tuple[str, Sequence[str], Sequence[Sequence[Any]], str]  # title, columns, rows, note


def pdf(title: str, heading: Sequence[str], charts: Sequence[ChartData], tables: Sequence[TableData],
        none_text: str) -> bytes:
    """The report as an A4 PDF: the title and heading lines, the charts, then each table
    (title, columns, rows, a note) continued over as many pages as it takes."""
    out = io.BytesIO()
    with (_LOCK, rc_context(_rc(require_font=True)),
          PdfPages(out, metadata={"Title": title, "Creator": "authsvc"}) as doc):
        pages = _Pages(doc)
        pages.text(title, size=16)
        for line in heading:
            pages.text(line, size=9)
        for chart_title, labels, series in charts:
            height = 0.3  # the axes; its title above and the day labels below take 3 + 4 lines
            fig = pages.need(height + LINE * 7)
            pages.y -= height + LINE * 7
            ax = fig.add_axes((MARGIN + 0.04, pages.y + LINE * 4, 1 - 2 * MARGIN - 0.05, height))
            _draw_chart(ax, chart_title, labels, series)
        for table_title, columns, rows, note in tables:
            _table(pages, table_title, columns, rows, note, none_text)
        pages.flush()
    return out.getvalue()
