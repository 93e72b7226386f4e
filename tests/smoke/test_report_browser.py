"""The report in a real browser: headless Chromium lays out a page rendered from committed
results and the page reads as it should (every figure an ``<svg>`` with content and a size, no
``nan`` in a table, a table per section, nothing wider than the window), and its screenshots are
not blank. Skipped where no Chromium is installed (Debian: ``apt-get install chromium``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnnbench.benchmarks.report_screenshots import (
    check_layout,
    find_chromium,
    measure_layout,
    screenshot_tiles,
)
from bnnbench.report import render_report

pytestmark = [
    pytest.mark.smoke,
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium (apt-get install chromium)"),
]

COMMITTED = Path(__file__).resolve().parents[2] / "results"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``uncertainty_mnist_2x800`` beside a copy of itself (``--compare``: eight columns), as if
    Fashion-MNIST had been absent in the copy, rendered outside the repository."""
    root = tmp_path_factory.mktemp("browser")
    copy = root / "bench"
    shutil.copytree(COMMITTED / "uncertainty_mnist_2x800", copy)
    runs = pd.read_csv(copy / "runs.csv")
    for column in [c for c in runs if c.startswith("ood_fashion_mnist_")]:
        runs[column] = np.nan
    runs["ood_fashion_mnist_status"] = "skipped: no /usr/share/datasets/fashion-mnist"
    runs.to_csv(copy / "runs.csv", index=False)
    out, damage = render_report(
        [copy, COMMITTED / "uncertainty_mnist_2x800"], root / "report.html", compare=True
    )
    assert not damage
    return out


def test_the_page_lays_out_without_problems(page: Path):
    layout = measure_layout(page, width=1280)
    assert check_layout(layout, sections=1) == []
    assert len(layout.figures) >= 4  # losses, times, votes, calibration
    summary = next(t for t in layout.tables if "summary" in t["cls"])
    assert "n/a" in summary["cells"]  # torch-ml's vote scores, said, not 0.500
    assert layout.height > 2000


def test_the_check_sees_an_empty_figure_and_a_nan(page: Path, tmp_path: Path):
    """The check is not vacuous: a page with an empty figure and a ``nan`` cell fails it."""
    broken = tmp_path / "broken.html"
    text = page.read_text()
    text = text.replace("<figure>", "<figure></figure><figure>", 1)
    text = text.replace("<td>n/a</td>", "<td>nan</td>", 1)
    broken.write_text(text)
    problems = check_layout(measure_layout(broken, width=1280), sections=1)
    assert any("holds no <svg>" in p for p in problems), problems
    assert any("'nan'" in p for p in problems), problems


def test_screenshots_show_the_page(page: Path, tmp_path: Path):
    from PIL import Image

    layout = measure_layout(page, width=1280)
    tiles = screenshot_tiles(page, tmp_path, width=1280, height=layout.height, tile_height=1400)
    assert len(tiles) >= 2
    for tile in tiles:
        with Image.open(tile) as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert image.width == 1280 and pixels.std() > 5  # text and figures, not a blank frame
