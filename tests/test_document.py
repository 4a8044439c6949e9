"""The document model: Markdown and self-contained HTML of the same sections."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from unet.document import (
    OURS,
    Code,
    Figure,
    Items,
    Note,
    Section,
    Table,
    Text,
    to_html,
    to_markdown,
)


@pytest.fixture
def sections(tmp_path) -> list[Section]:
    Image.fromarray(np.full((4, 6), 128, np.uint8)).save(tmp_path / "f.png")
    return [
        Section("a", "First", [Text("x < y & z"), Note("missing: --weights"), Items(["i", "j"])]),
        Section("b", "Second", [
            Table(["name", "value"], [["a|b", "1"], [f"{OURS} x", "2"]], caption="the table"),
            Figure("f.png", 'a "figure"'), Code("{\n <b>\n}"),
        ]),
    ]  # fmt: skip


def test_markdown_escapes_pipes_and_links_figures(sections) -> None:
    md = to_markdown("Title", sections)
    assert md.startswith("# Title\n\n## First\n\nx < y & z\n\n> **Note:** missing: --weights")
    assert "| name | value |\n|---|---|\n| a\\|b | 1 |\n| this run x | 2 |" in md
    assert '![a "figure"](figures/f.png)' in md and "```\n{\n <b>\n}\n```" in md


def test_html_escapes_text_embeds_figures_and_marks_our_row(sections, tmp_path) -> None:
    page = to_html("T <1>", sections, tmp_path)
    assert "<title>T &lt;1&gt;</title>" in page and "<p>x &lt; y &amp; z</p>" in page
    assert '<p class="note">missing: --weights</p>' in page
    assert "<tr class=ours><td>this run x</td>" in page and "<td>a|b</td>" in page
    assert "<pre>{\n &lt;b&gt;\n}</pre>" in page and 'alt="a &quot;figure&quot;"' in page
    data = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (6, 4)
    assert '<nav><a href="#a">First</a> <a href="#b">Second</a></nav>' in page


def test_an_empty_section_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="section 'x' has no content"):
        to_markdown("T", [Section("x", "X")])
    with pytest.raises(ValueError, match="section 'x' has no content"):
        to_html("T", [Section("x", "X")], tmp_path)
