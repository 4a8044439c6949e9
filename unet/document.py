"""A small document model rendered twice: Markdown with linked PNGs, and one HTML file.

A document is a title and :class:`Section` s of blocks: :class:`Text` (a paragraph),
:class:`Note` (what is missing or worth a warning), :class:`Items` (a bullet list),
:class:`Table`, :class:`Figure` (a PNG in the figures folder) and :class:`Code` (preformatted
text such as a configuration). :func:`to_markdown` links the figures
(``figures/NAME.png``); :func:`to_html` embeds them as base64 data URIs and inlines its
style sheet, so the HTML file opens offline, alone, with nothing fetched: no scripts, no
external URLs. It is readable on a phone: the viewport is the device's, images shrink to
the width, and wide tables and code scroll sideways inside their own box. A section without
blocks is refused (a report never shows an empty section).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Text:
    text: str


@dataclass
class Note:
    text: str


@dataclass
class Items:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # file name inside the figures folder
    caption: str


@dataclass
class Code:
    text: str


Block = Text | Note | Items | Table | Figure | Code


@dataclass
class Section:
    id: str  # the HTML anchor
    title: str
    blocks: list[Block] = field(default_factory=list)


FIGURES = "figures"
OURS = "this run"  # a table row whose first cell starts so is highlighted in the HTML

CSS = """
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:62rem;padding:0 1rem 3rem;color:#1b1b1b;background:#fff}
h1{font-size:1.6rem;margin:1.2rem 0 .4rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;
border-bottom:1px solid #ddd}nav{font-size:.95rem}nav a{margin-right:.8rem;white-space:nowrap}
.scroll{overflow-x:auto;margin:.6rem 0}table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;white-space:nowrap}
th{background:#f2f2f2}.caption{font-size:.85rem;color:#555;margin:.8rem 0 .2rem}
tr.ours td{background:#fff4d6;font-weight:600}img{max-width:100%;height:auto;display:block}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#555}
pre{background:#f6f6f6;padding:.6rem;font-size:.8rem;margin:0}
.note{border-left:4px solid #d08000;background:#fff8e8;padding:.4rem .7rem}
p,li,figcaption{overflow-wrap:anywhere}td.wrap{white-space:normal;min-width:12rem}
""".strip()


def _check(sections: list[Section]) -> None:
    for section in sections:
        if not section.blocks:
            raise ValueError(f"section {section.id!r} has no content")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> str:
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Note):
        return f"> **Note:** {block.text}"
    if isinstance(block, Items):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Figure):
        return f"![{block.caption}]({FIGURES}/{block.name})\n\n*{block.caption}*"
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    lines = [f"*{block.caption}*", ""] if block.caption else []
    lines += [
        "| " + " | ".join(map(_md_cell, block.header)) + " |",
        "|" + "---|" * len(block.header),
    ]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
    return "\n".join(lines)


def to_markdown(title: str, sections: list[Section]) -> str:
    """The document as Markdown; figures are links to ``figures/NAME``."""
    _check(sections)
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts += [_md_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


def _html_table(table: Table, ours: set[int]) -> str:
    esc = html.escape
    caption = f'<p class="caption">{esc(table.caption)}</p>' if table.caption else ""
    head = "".join(f"<th>{esc(str(h))}</th>" for h in table.header)
    rows = "".join(
        ("<tr class=ours>" if i in ours else "<tr>")
        + "".join(f"<td{' class=wrap' if len(str(c)) > 40 else ''}>{esc(str(c))}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(table.rows)
    )
    return f'{caption}<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>'


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_block(block: Block, figures: Path) -> str:
    esc = html.escape
    if isinstance(block, Text):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, Note):
        return f'<p class="note">{esc(block.text)}</p>'
    if isinstance(block, Items):
        return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Figure):
        uri = _data_uri(figures / block.name)
        return (
            f'<figure><img src="{uri}" alt="{esc(block.caption)}">'
            f"<figcaption>{esc(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Code):
        return f'<div class="scroll"><pre>{esc(block.text)}</pre></div>'
    ours = {i for i, row in enumerate(block.rows) if row and str(row[0]).startswith(OURS)}
    return _html_table(block, ours)


def to_html(title: str, sections: list[Section], figures: str | Path) -> str:
    """The document as one self-contained HTML page; PNGs are read from ``figures``."""
    _check(sections)
    esc, figures = html.escape, Path(figures)
    nav = " ".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{esc(s.title)}</h2>'
        + "".join(_html_block(b, figures) for b in s.blocks)
        + "</section>"
        for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )
