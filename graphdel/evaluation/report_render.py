"""The report's two renderings of one list of blocks: ``report.md`` (:func:`to_markdown`) and the
self-contained ``report.html`` (:func:`to_html`).
"""

from __future__ import annotations

import base64

from graphdel.evaluation.report_format import fmt, html_escape, md_escape
from graphdel.evaluation.report_verdicts import NOT_JUDGED

__all__ = ["to_markdown", "to_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;
padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.5rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
.verdicts{list-style:none;padding:0}
.verdicts li{margin:.4rem 0;padding:.4rem .6rem;border-left:4px solid #999;background:#f8f8f8}
.PASS{border-color:#2ca02c!important}.FAIL{border-color:#d62728!important}
.banner{padding:.5rem .8rem;background:#fff4d6;border-left:4px solid #e0a800}
.tag{font-weight:bold;margin-right:.4rem}.ok{color:#1a7f1a}.bad{color:#c62828}.unk{color:#777}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85rem;color:#555}
"""


def _css_class(ok: bool | None) -> str:
    return "ok" if ok else ("bad" if ok is False else "unk")


def _mark(ok: bool | None) -> str:
    return "✓" if ok else ("✗" if ok is False else "?")


def to_markdown(blocks) -> str:
    """``report.md`` from the report's blocks (``("h1" | "h2" | "h3" | "p" | "banner", text)``,
    ``("verdicts", [verdict])``, ``("table", head, rows)``, ``("img", relpath, caption, png)``); every user
    string escaped."""
    lines: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + md_escape(b[1]), ""]
        elif kind == "p":
            lines += [md_escape(b[1]), ""]
        elif kind == "banner":
            lines += [f"> **{md_escape(b[1])}**", ""]
        elif kind == "verdicts":
            for v in b[1]:
                score = "" if v["score"] is None else f" — score {fmt(v['score'])} (rank {v['rank']})"
                judged = v["status"] != NOT_JUDGED
                parts = "; ".join((f"{_mark(ok)} " if judged else "") + md_escape(text) for ok, text in v["parts"])
                lines.append(f"- **{v['status']}** {md_escape(v['name'])} (`{md_escape(v['method'])}`): {parts}{score}")
            lines.append("")
        elif kind == "table":
            head, rows = b[1], b[2]
            lines.append("| " + " | ".join(md_escape(h) for h in head) + " |")
            lines.append("|" + "---|" * len(head))
            for r in rows:
                lines.append("| " + " | ".join(md_escape(c) for c in r) + " |")
            lines.append("")
        elif kind == "img":
            _, rel, caption, _png_bytes = b
            lines += [f"![{md_escape(caption)}]({rel})", "", f"*{md_escape(caption)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_html(blocks, title: str) -> str:
    """The self-contained ``report.html`` of the same blocks: inline CSS, figures as base64 data URIs, no
    script, and a Content-Security-Policy that forbids any; every user string escaped."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
           "style-src 'unsafe-inline'\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html_escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{html_escape(b[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{html_escape(b[1])}</p>")
        elif kind == "banner":
            out.append(f'<p class="banner"><b>{html_escape(b[1])}</b></p>')
        elif kind == "verdicts":
            out.append('<ul class="verdicts">')
            for v in b[1]:
                judged = v["status"] != NOT_JUDGED
                parts = "; ".join(
                    f'<span class="{_css_class(ok)}">{_mark(ok) + " " if judged else ""}{html_escape(t)}</span>'
                    for ok, t in v["parts"])
                score = ("" if v["score"] is None
                         else f" — score <b>{fmt(v['score'])}</b> (rank {html_escape(v['rank'])})")
                css = html_escape(str(v["status"]).replace(" ", "-"))
                out.append(f'<li class="{css}"><span class="tag">{html_escape(v["status"])}</span>'
                           f'<b>{html_escape(v["name"])}</b> (<code>{html_escape(v["method"])}</code>): '
                           f'{parts}{score}</li>')
            out.append("</ul>")
        elif kind == "table":
            head, rows = b[1], b[2]
            cells = "".join(f"<th>{html_escape(x)}</th>" for x in head)
            out.append(f"<table><thead><tr>{cells}</tr></thead><tbody>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td>{html_escape(c)}</td>" for c in r) + "</tr>")
            out.append("</tbody></table>")
        elif kind == "img":
            _, rel, caption, png = b
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html_escape(caption)}">'
                       f"<figcaption>{html_escape(caption)} ({html_escape(rel)})</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
