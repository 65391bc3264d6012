"""Self-contained HTML reports (plots embedded as PNG data URIs, no external files).

Usage::

    rep = Report("Training report")
    rep.heading("Metrics"); rep.table(rows, columns); rep.figure(fig); rep.paragraph("...")
    rep.save(path)   # atomic: written to <path>.part then renamed
"""
from __future__ import annotations

import base64
import html
import io
import os
from typing import Any, Iterable, List, Optional, Sequence

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.45}
h1{border-bottom:2px solid #1f3b57;padding-bottom:.2em}h2{color:#1f3b57;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eef2f6}td:first-child,th:first-child{text-align:left}tr.best td{font-weight:bold;background:#f3fbf3}
.note{background:#fff8e5;border-left:4px solid #f0ad4e;padding:.5em .8em}.muted{color:#666;font-size:.9em}
img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}
"""


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        if abs(v) >= 1e4 or (0 < abs(v) < 1e-3):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return str(v)


def figure_to_data_uri(fig, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:
        pass
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(w: float = 7.0, h: float = 3.8):
    """A matplotlib figure on the Agg backend (works headless and inside QGIS)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    return fig


class Report:
    def __init__(self, title: str):
        self.title = title
        self.parts: List[str] = []

    def heading(self, text: str, level: int = 2) -> "Report":
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, cls: Optional[str] = None, raw: bool = False) -> "Report":
        body = text if raw else html.escape(text)
        self.parts.append(f"<p{f' class={cls!r}' if cls else ''}>{body}</p>")
        return self

    def note(self, text: str) -> "Report":
        return self.paragraph(text, "note")

    def html(self, fragment: str) -> "Report":
        self.parts.append(fragment)
        return self

    def table(self, rows: Iterable[Sequence[Any]], columns: Sequence[str], highlight: Optional[int] = None,
              digits: int = 3) -> "Report":
        out = ["<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"]
        for i, r in enumerate(rows):
            cls = " class='best'" if highlight is not None and i == highlight else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(fmt(v, digits))}</td>" for v in r) + "</tr>")
        out.append("</table>")
        self.parts.append("".join(out))
        return self

    def figure(self, fig, caption: Optional[str] = None) -> "Report":
        uri = figure_to_data_uri(fig)
        cap = f"<figcaption class='muted'>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure><img src='{uri}'/>{cap}</figure>")
        return self

    def image(self, data_uri: str, caption: Optional[str] = None) -> "Report":
        cap = f"<figcaption class='muted'>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure><img src='{data_uri}'/>{cap}</figure>")
        return self

    def render(self) -> str:
        return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(self.title)
                + f"</title><style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "\n".join(self.parts) + "</body></html>")

    def save(self, path: str) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".part"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.render())
        os.replace(tmp, path)
        return path
