"""Look at a rendered report in a real headless browser: layout checks and screenshots.

``python -P -m bnnbench.benchmarks.report_screenshots PAGE.html --out DIR`` opens a page written
by ``bnnbench report`` in headless Chromium (Debian: ``apt-get install chromium``), twice:

1. with ``--dump-dom`` on a copy of the page that carries a small probe script: after the
   browser has laid the page out, the script writes what it measured into the DOM (every
   figure's rendered size and whether it holds an ``<svg>`` with drawn content, every table's
   cells and width, the section headings, the page's full height and any horizontal overflow),
   and :func:`check_layout` turns that into a list of problems (an empty figure, a ``nan`` in a
   table, a section without a table, a table or the page wider than the window);
2. with ``--screenshot`` at the page's full height, cut into tiles ``DIR/<page>_NN.png`` of
   ``--tile-height`` pixels (blank margin trimmed), for a person to read.

``--results DIR...`` renders the page from results folders first (into ``--out``). Exit status:
0 when the page passes, 1 when it has problems (printed one per line), 2 when no Chromium is
found. Nothing is fetched: the page is opened from disk and the browser gets no network.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

__all__ = [
    "CHROMIUM_NAMES",
    "Layout",
    "check_layout",
    "find_chromium",
    "main",
    "measure_layout",
    "screenshot_tiles",
]

#: Executables tried, in order, by :func:`find_chromium`.
CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome")
#: Flags for a headless Chromium that needs no display, GPU, sandbox (root in a container) or
#: network.
HEADLESS_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--proxy-server=127.0.0.1:9",  # nothing may be fetched: any request fails at once
    "--virtual-time-budget=5000",
)
#: Smallest rendered width and height (CSS pixels) of a figure that shows something.
MIN_FIGURE_PX = 40
#: Table cell texts that mean a number went missing or wrong.
BAD_CELL = re.compile(r"\b(nan|none|null|undefined)\b", re.IGNORECASE)
PROBE_ID = "bnnbench-layout-probe"
#: Runs after the page is parsed; forces layout and records what the browser drew.
PROBE_SCRIPT = """
<script>
(function () {
  const drawn = "path, use, image, rect, line, polyline, polygon, circle, text";
  const figures = Array.from(document.querySelectorAll("figure")).map((f) => {
    const svg = f.querySelector("svg");
    const box = (svg || f).getBoundingClientRect();
    return {svg: !!svg, drawn: svg ? svg.querySelectorAll(drawn).length : 0,
            width: box.width, height: box.height};
  });
  const tables = Array.from(document.querySelectorAll("table")).map((t) => ({
    cls: t.className, rows: t.rows.length,
    cells: Array.from(t.querySelectorAll("td")).map((td) => td.textContent.trim()),
    width: t.getBoundingClientRect().width, room: t.parentElement.clientWidth}));
  const headings = Array.from(document.querySelectorAll("h2")).map((h) => h.textContent.trim());
  const root = document.documentElement;
  const out = document.createElement("pre");
  out.id = "PROBE_ID";
  out.textContent = JSON.stringify({figures, tables, headings,
    height: Math.ceil(root.scrollHeight), scroll_width: root.scrollWidth,
    window_width: window.innerWidth});
  document.body.appendChild(out);
})();
</script>
""".replace("PROBE_ID", PROBE_ID)


@dataclass
class Layout:
    """What the browser measured on a page (CSS pixels)."""

    figures: list[dict] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    height: int = 0
    scroll_width: int = 0
    window_width: int = 0


def find_chromium() -> Path | None:
    """The first of :data:`CHROMIUM_NAMES` on ``PATH``, or ``None``."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def _chromium(chromium: Path, args: Sequence[str], timeout_s: float = 120) -> str:
    proc = subprocess.run(
        [str(chromium), *HEADLESS_FLAGS, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


class _ProbeReader(HTMLParser):
    """Pulls the probe's ``<pre>`` text out of the dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self._inside = False
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre" and ("id", PROBE_ID) in attrs:
            self._inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.text += data


def measure_layout(page: Path, *, width: int = 1280, chromium: Path | None = None) -> Layout:
    """Open ``page`` in headless Chromium ``width`` pixels wide and return what it laid out."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
    text = Path(page).read_text(encoding="utf-8")
    probe = text.replace("</body>", PROBE_SCRIPT + "</body>", 1)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / Path(page).name
        copy.write_text(probe, encoding="utf-8")
        dom = _chromium(chromium, [f"--window-size={width},1000", "--dump-dom", copy.as_uri()])
    reader = _ProbeReader()
    reader.feed(dom)
    if not reader.text:
        raise RuntimeError("the probe did not run: no layout in the dumped DOM")
    return Layout(**json.loads(reader.text))


#: The heading of the report's opening section (bnnbench.report.recommendation_html).
ANSWERS_HEADING = "Which backend should I use?"


def check_layout(layout: Layout, *, sections: int | None = None) -> list[str]:
    """Problems a reader would see: no "which backend?" answers, empty or missing figures,
    ``nan`` in tables, a section without its table, a table or the page wider than the
    window. ``sections``: the number of model sections expected (``None``: at least one)."""
    problems = []
    model_sections = [h for h in layout.headings if h not in ("Provenance", ANSWERS_HEADING)]
    if ANSWERS_HEADING not in layout.headings:
        problems.append(f'no "{ANSWERS_HEADING}" section')
    elif not any("answers" in t["cls"] for t in layout.tables):
        problems.append(f'the "{ANSWERS_HEADING}" section has no table of answers')
    if sections is None and not model_sections:
        problems.append("no section heading")
    if sections is not None and len(model_sections) != sections:
        problems.append(f"{len(model_sections)} sections, expected {sections}")
    summaries = [t for t in layout.tables if "summary" in t["cls"]]
    if len(summaries) != len(model_sections):
        problems.append(f"{len(summaries)} summary tables for {len(model_sections)} sections")
    for i, figure in enumerate(layout.figures):
        if not figure["svg"]:
            problems.append(f"figure {i + 1} holds no <svg>")
        elif figure["drawn"] < 5:
            problems.append(f"figure {i + 1} draws almost nothing ({figure['drawn']} elements)")
        if figure["width"] < MIN_FIGURE_PX or figure["height"] < MIN_FIGURE_PX:
            problems.append(
                f"figure {i + 1} is rendered {figure['width']:.0f} x {figure['height']:.0f} px"
            )
    for i, table in enumerate(layout.tables):
        bad = sorted({c for c in table["cells"] if BAD_CELL.search(c)})
        if bad:
            problems.append(f"table {i + 1} shows {', '.join(map(repr, bad))}")
        if table["rows"] < 2:
            problems.append(f"table {i + 1} has no rows")
        if table["width"] > table["room"] + 1:
            problems.append(
                f"table {i + 1} is {table['width']:.0f} px wide in {table['room']} px (scrolls)"
            )
    if layout.scroll_width > layout.window_width:
        problems.append(
            f"the page is {layout.scroll_width} px wide in a {layout.window_width} px window"
        )
    return problems


def screenshot_tiles(
    page: Path,
    out_dir: Path,
    *,
    width: int = 1280,
    height: int,
    tile_height: int = 1400,
    chromium: Path | None = None,
) -> list[Path]:
    """Screenshot ``page`` at ``width`` x ``height`` and cut it into PNG tiles in ``out_dir``
    (``<page stem>_NN.png``, the white margin under the content trimmed)."""
    from PIL import Image, ImageChops

    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    full = out_dir / f"{Path(page).stem}_full.png"
    _chromium(
        chromium,
        [f"--window-size={width},{height}", f"--screenshot={full}", Path(page).resolve().as_uri()],
    )
    tiles = []
    with Image.open(full) as image:
        image = image.convert("RGB")
        box = ImageChops.difference(image, Image.new("RGB", image.size, "white")).getbbox()
        bottom = min(image.height, (box[3] if box else image.height) + 20)
        for i, top in enumerate(range(0, bottom, tile_height)):
            tile = out_dir / f"{Path(page).stem}_{i:02d}.png"
            image.crop((0, top, width, min(top + tile_height, bottom))).save(tile)
            tiles.append(tile)
    full.unlink()
    return tiles


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -P -m bnnbench.benchmarks.report_screenshots", description=__doc__
    )
    parser.add_argument("page", type=Path, nargs="?", help="a report written by bnnbench report")
    parser.add_argument("--results", type=Path, nargs="+", help="render the page from these")
    parser.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    parser.add_argument("--width", type=int, default=1280, help="window width (px)")
    parser.add_argument("--tile-height", type=int, default=1400, help="screenshot tile (px)")
    parser.add_argument("--sections", type=int, help="number of model sections expected")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    page = args.page
    if args.results:
        from bnnbench.report import render_report

        page, _ = render_report(args.results, args.out / "report.html")
    if page is None:
        parser.error("give a PAGE or --results")
    layout = measure_layout(page, width=args.width, chromium=chromium)
    tiles = screenshot_tiles(
        page,
        args.out,
        width=args.width,
        height=layout.height,
        tile_height=args.tile_height,
        chromium=chromium,
    )
    print(f"{len(layout.figures)} figures, {len(layout.tables)} tables, {layout.height} px high")
    print("\n".join(str(t) for t in tiles))
    problems = check_layout(layout, sections=args.sections)
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
