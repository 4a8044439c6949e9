"""The report in a real browser: headless Chromium renders index.html at phone and desktop width.

A copy of index.html is loaded in an iframe of a checking page (an iframe gives the copy a
true 390 px viewport, narrower than headless Chromium's smallest window); the checking
page's script reports broken images, empty sections and horizontal overflow into its DOM,
which ``--dump-dom`` prints, and every console message of the page (``--enable-logging=
stderr``: the report has no script, so any message is an error) fails the check. Screenshots
at both widths must not be blank. Deliberately broken copies (a broken image, an empty
section, a ``console.error``) prove that the check catches each. Without Chromium the test
skips, unless the environment variable CI is set: then it fails (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report import report, run  # noqa: F401 (fixtures)

PHONE, DESKTOP = 390, 1280
CHECK = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="page" src="PAGE" style="border:0;width:WIDTHpx;height:HEIGHTpx"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => {
  const frame = document.getElementById("page"), doc = frame.contentDocument;
  const images = [...doc.images];  // loaded: the frame's load event waits for them
  const shows = (c) => c.tagName === "IMG" || c.querySelector("img") || c.innerText.trim();
  const result = {
    images: images.length,
    broken: images.filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.alt),
    sections: doc.querySelectorAll("section").length,
    empty: [...doc.querySelectorAll("section")].filter((s) =>
      ![...s.children].some((c) => !/^H[1-6]$/.test(c.tagName) && shows(c))).map((s) => s.id),
    overflow: doc.documentElement.scrollWidth - doc.documentElement.clientWidth,
  };
  const out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script></body></html>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; skip without it, fail without it when CI is set."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed but CI is set (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); with CI set this fails")
    return path


def _chromium(chromium: str, folder: Path, width: int, *flags: str) -> subprocess.CompletedProcess:
    page = folder / f"check-{width}.html"
    html = CHECK.replace("PAGE", "index.html").replace("WIDTH", str(width))
    page.write_text(html.replace("HEIGHT", "2000"))
    cmd = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--allow-file-access-from-files",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={folder / 'profile'}",
        "--virtual-time-budget=10000",
        f"--window-size={max(width, 500)},2000",
        *flags,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def problems(chromium: str, folder: Path, width: int) -> tuple[list[str], dict]:
    """What is wrong with ``folder/index.html`` at ``width`` px, and the page's counts."""
    done = _chromium(chromium, folder, width, "--dump-dom")
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout)
    if found is None:
        return [f"no result from the checking page (exit {done.returncode})"], {}
    result = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))
    out = [f"broken image: {alt}" for alt in result["broken"]]
    out += [f"empty section: {name}" for name in result["empty"]]
    if result["overflow"] > 0:
        out.append(f"{result['overflow']} px wider than the {width} px viewport")
    out += [f"console: {line}" for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return out, result


def screenshot(chromium: str, folder: Path, width: int) -> np.ndarray:
    """The top 2000 px of the report at ``width`` px, as an RGB array."""
    path = folder / f"shot-{width}.png"
    _chromium(chromium, folder, width, f"--screenshot={path}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))[:, :width]


@pytest.fixture
def page(report, tmp_path) -> Path:  # noqa: F811 (the imported fixture)
    """A copy of the report's index.html in a folder of its own."""
    shutil.copyfile(report / "index.html", tmp_path / "index.html")
    return tmp_path


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_report_renders_without_problems(chromium, page, width) -> None:
    found, result = problems(chromium, page, width)
    assert found == []
    assert result["images"] == 8 and result["sections"] == 9
    shot = screenshot(chromium, page, width)
    assert shot.shape[1] == width and shot.shape[0] >= 1000
    ink = (shot.min(axis=2) < 200).mean()  # share of pixels that are not near-white
    assert 0.02 < ink < 0.9 and shot.std() > 20, (ink, shot.std())


BROKEN = {
    "broken image": (
        lambda html: re.sub(
            r'src="data:image/png;base64,[^"]{40}',
            'src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUg',
            html,
            count=1,
        ),
        "broken image: ",
    ),
    "empty section": (
        lambda html: html.replace(
            "</body>", '<section id="nothing"><h2>Nothing</h2><div> </div></section></body>'
        ),
        "empty section: nothing",
    ),
    "console error": (
        lambda html: html.replace(
            "</body>", '<script>console.error("report broke")</script></body>'
        ),
        'console: .*"report broke"',
    ),
    "too wide": (
        lambda html: html.replace("</body>", '<p style="width:600px">w</p></body>'),
        r"\d+ px wider than the 390 px viewport",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_check_catches_a_broken_page(chromium, page, case) -> None:
    breaks, message = BROKEN[case]
    html = (page / "index.html").read_text()
    broken = breaks(html)
    assert broken != html
    (page / "index.html").write_text(broken)
    found, _ = problems(chromium, page, PHONE)
    assert len(found) == 1 and re.match(message, found[0]), found
