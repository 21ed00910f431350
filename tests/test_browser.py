"""A real browser through the dashboard: `streamlit run app.py` headless on a loopback port, Debian's Chromium
driven by Playwright over every page of the stored runs. No Streamlit error box anywhere; charts and galleries
present; the audit CSV downloads. Screenshots go to test-artifacts/ (git-ignored)."""
from __future__ import annotations

import os
import re
import shutil
import signal

import pytest

from apptools import ARTIFACTS, TITLES, free_port, start_streamlit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# page key -> (what must be on it once it has rendered, how many)
EXPECT = {"about": [('[data-testid="stImage"] img', 1)],
          "forget_set": [('[data-testid="stDataFrame"]', 1), ('[data-testid="stMetric"]', 5)],
          "run": [('[data-testid="stDataFrame"]', 1)],
          "audit": [(".js-plotly-plot", 1), ('[data-testid="stDataFrame"]', 2)],
          "features": [(".js-plotly-plot", 3)],
          "embeddings": [(".js-plotly-plot", 1)],
          "alignment": [(".js-plotly-plot", 3), ('[data-testid="stDataFrame"]', 2)]}


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium, or `make test` as root installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(stored_runs, tmp_path_factory):
    runs_dir, ids = stored_runs
    port = free_port()
    proc = start_streamlit(runs_dir, port, tmp_path_factory.mktemp("streamlit") / "streamlit.log")
    yield f"http://127.0.0.1:{port}", ids, runs_dir
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def settle(page, key: str) -> None:
    """Wait until the page's title and expected elements are there and Streamlit has finished running."""
    page.get_by_role("heading", name=TITLES[key], level=1).wait_for(timeout=60_000)
    for selector, count in EXPECT[key]:
        page.wait_for_function(f"document.querySelectorAll('{selector}').length >= {count}", timeout=90_000)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
    page.wait_for_timeout(500)  # plotly draws after the element appears


def assert_no_error_box(page, key: str) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, f"{key}: {boxes.first.inner_text()}"


def test_every_page_in_a_real_browser(browser, server):
    from tmu_core.store import list_runs
    from ui.tables import run_label

    url, ids, runs_dir = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    settle(page, "about")
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert re.search(r"Compute device: (cpu|cuda|mps)", sidebar.inner_text())
    # choose the run that has a UMAP map, as a user would, in the sidebar (by its short label)
    label = run_label(next(r for r in list_runs(runs_dir) if r.run_id == ids[0]))
    sidebar.locator('[data-testid="stSelectbox"]').click()
    page.get_by_role("option", name=label, exact=True).click()
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)
    for key in TITLES:  # navigate by the sidebar's links: one session, the selection kept
        sidebar.locator('[data-testid="stSidebarNav"] a', has_text=_nav_label(key)).click()
        settle(page, key)
        assert_no_error_box(page, key)
        page.screenshot(path=str(ARTIFACTS / f"{key}.png"), full_page=True)
    page.close()


def test_audit_csv_downloads(browser, server):
    url, ids, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/audit")
    settle(page, "audit")
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile("Download the per-sample table")).click()
    download = info.value
    text = open(download.path()).read()
    header = text.splitlines()[0].split(",")
    assert download.suggested_filename.endswith("-samples.csv")
    assert {"forget_id", "aux_index", "role", "NF", "AF", "CF", "p_easy", "pred_label", "true_label"} <= set(header)
    assert "image" not in header and "id" not in header  # id meant two things; split by meaning
    page.close()


def _nav_label(key: str) -> str:
    from ui.nav import PAGES

    return PAGES[key][1]
