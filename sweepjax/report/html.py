"""The command center page: one self-contained HTML file.

Every image is an embedded ``data:image/png;base64`` URI and the style and the small
script are inline, so the page opens offline and makes no request. The script records,
on load, how many images decoded and which resources were fetched
(``document.body.dataset.imagesOk`` / ``imagesTotal`` / ``resources``) so a headless
browser can check the page as a person would see it.
"""

from __future__ import annotations

import base64
import html
from typing import NamedTuple

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
 color:#222;max-width:1240px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px
 solid #ddd;padding-bottom:3px} .sub{color:#555;margin:0 0 12px}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0} figcaption{font-size:12px;color:#555;max-width:760px}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right} th{background:#f5f5f5}
td.k,th.k{text-align:left} td.diff{background:#fff3b0;font-weight:600}
.note{color:#8a6d00;background:#fffbe6;border:1px solid #f0e0a0;padding:6px 10px;
 font-size:13px;display:inline-block}
.flag{color:#b00020} ul{margin:4px 0 4px 18px;padding:0;font-size:13px}
.pass{color:#0a7a28;font-weight:600} .fail{color:#b00020;font-weight:600}
"""

# Runs after every image has loaded (or failed); data: URIs are not network resources,
# so `resources` should be an empty list.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesTotal = String(imgs.length);
  document.body.dataset.imagesOk = String(ok.length);
  var res = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  document.body.dataset.resources = JSON.stringify(res);
});
"""


class Panel(NamedTuple):
    """One section: a title, PNG images (bytes, caption) and/or HTML, or a note."""

    title: str
    images: list[tuple[bytes, str]]
    html: str = ""
    note: str | None = None


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def table(
    header: list[str] | None,
    rows: list[list[str]],
    raw: bool = False,
    classes: list[list[str]] | None = None,
) -> str:
    """An HTML table; cells escaped unless ``raw``; ``classes[i][j]`` per body cell."""

    def cell(tag, v, cls=""):
        c = f' class="{cls}"' if cls else ""
        return f"<{tag}{c}>{v if raw else esc(v)}</{tag}>"

    head = "".join(cell("th", h, "k" if j == 0 else "") for j, h in enumerate(header or []))
    body = []
    for i, r in enumerate(rows):
        cls = classes[i] if classes else [""] * len(r)
        body.append(
            "<tr>"
            + "".join(
                cell("td", v, " ".join(x for x in ("k" if j == 0 else "", cls[j]) if x))
                for j, v in enumerate(r)
            )
            + "</tr>"
        )
    head_row = f"<tr>{head}</tr>" if header else ""
    return f"<table>{head_row}{''.join(body)}</table>"


def render(title: str, subtitle: str, panels: list[Panel]) -> str:
    """The whole page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        f"<script>{SCRIPT}</script>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{esc(subtitle)}</p>',
    ]
    for p in panels:
        parts.append(f"<section><h2>{esc(p.title)}</h2>")
        if p.note:
            parts.append(f'<p class="note">{esc(p.note)}</p>')
        if p.images:
            parts.append('<div class="grid">')
            for png, caption in p.images:
                parts.append(
                    f"<figure>{img_tag(png, caption)}"
                    f"<figcaption>{esc(caption)}</figcaption></figure>"
                )
            parts.append("</div>")
        parts.append(p.html)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
