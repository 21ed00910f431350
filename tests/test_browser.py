"""A real browser through the dashboard: `streamlit run app.py` headless on a loopback port, Debian's Chromium
driven by Playwright over every page of the synthetic stored runs (conftest.synthetic_runs). No Streamlit error box anywhere; charts and galleries
present; the audit CSV downloads. Screenshots go to test-artifacts/ (git-ignored)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

import pytest

from apptools import ARTIFACTS, TITLES, free_port, start_streamlit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# page key -> (what must be on it once it has rendered, how many)
EXPECT = {"about": [('[data-testid="stImage"] img', 1)],
          "demo": [('[data-testid="stDataFrame"]', 1)],
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
def server(synthetic_runs, tmp_path_factory):
    runs_dir, ids = synthetic_runs
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


def open_page(browser, url: str, key: str):
    """A new 1400x1000 page on `key`, settled."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/{key}")
    settle(page, key)
    return page


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
    page = open_page(browser, url, "audit")
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


def _idle(page) -> None:
    page.wait_for_timeout(500)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
    page.wait_for_timeout(500)


def test_forget_set_bad_count_and_whole_class_pick_in_a_real_browser(browser, server):
    """Every step waits for what it needs (Playwright's expect retries until the page shows it): a rerun
    replaces elements, so nothing is held across one and nothing waits on a guess at idleness."""
    from playwright.sync_api import expect

    url, _, _ = server
    page = open_page(browser, url, "forget_set")
    size = page.locator('[data-testid="stMetric"]').first.locator('[data-testid="stMetricValue"]')  # |D_f|
    alerts = page.locator('[data-testid="stAlert"]')
    field = page.get_by_label("Samples", exact=True).and_(page.locator("input"))
    field.fill("")  # a cleared field is named, and |D_f| stays what it was
    field.press("Enter")
    expect(alerts.filter(has_text="Enter a whole number from 1 to 124; still 100.")).to_have_count(1)
    expect(size).to_have_text("100")
    field.fill("40")
    field.press("Enter")
    expect(size).to_have_text("40")
    expect(alerts).to_have_count(0)
    page.get_by_text("hand-pick", exact=True).click()
    # the gallery of hand-pick mode (keyed fs_pick_...), drawn by the current run (a rerun's leftovers are stale)
    grid = page.locator('[data-testid="stElementContainer"][class*="st-key-fs_pick_"]:not([data-stale="true"]) '
                        '[data-testid="stDataFrame"]')
    expect(grid).to_have_count(1)
    grid.scroll_into_view_if_needed()
    for row in (0, 1):  # tick two images (56-px rows under a 35-px header), then the header's select-all
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 18, box["y"] + 35 + 28 + 56 * row)
        expect(size).to_have_text(str(row + 1))
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 17)
    refused = alerts.filter(has_text="125 hand-picked samples cannot be forgotten")
    expect(refused).to_have_count(1)
    expect(refused).to_contain_text("last valid one (2 samples)")
    expect(size).to_have_text("2")
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(1)  # the gallery is kept
    page.screenshot(path=str(ARTIFACTS / "forget_set-whole-class.png"), full_page=True)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Run").click()
    expect(page.get_by_text("Will launch")).to_contain_text("2 hand-picked samples", timeout=60_000)
    page.close()


def test_run_page_card_and_method_picker_in_a_real_browser(browser, server):
    url, ids, _ = server
    page = open_page(browser, url, "run")
    card = page.locator(".st-key-run_result")
    assert card.is_visible() and card.bounding_box()["y"] < 1000  # the result is in view without scrolling
    for label in ("Gold A_f (the target)", "TMU A_f", "TMU |Δ| to gold", "Best aligned"):
        assert label in card.inner_text()
    page.get_by_text("Methods and their settings").click()
    _idle(page)
    picker = page.locator('[data-testid="stMultiSelect"]').first
    assert "Bad Teacher" in picker.inner_text() and "badteacher" not in picker.inner_text()
    picker.get_by_role("button", name="Clear all").click()
    _idle(page)
    assert page.get_by_role("button", name="Launch run").is_disabled()
    assert "No method chosen" in " ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())
    page.screenshot(path=str(ARTIFACTS / "run-no-methods.png"), full_page=True)
    page.close()


def test_sweep_launched_from_the_alignment_page_in_a_real_browser(browser, server):
    """The Sweeps tab starts a real background sweep and shows its progress; the sweep is stopped afterwards."""
    url, ids, runs_dir = server
    page = open_page(browser, url, "alignment")
    page.get_by_role("tab", name="Sweeps over forget classes").click()
    _idle(page)
    page.get_by_text("Launch a sweep on digits").click()  # the expander (closed when sweeps exist)
    _idle(page)
    for name, text in (("Seeds", "0"), ("Forget counts", "5")):
        box = page.get_by_role("textbox", name=name)
        box.fill(text)
        box.press("Enter")
    _idle(page)
    page.get_by_role("button", name=re.compile("^Launch sweep")).click()
    try:
        page.get_by_text(re.compile(r"Sweep sweep-digits-\d+-\d+: \d of 2 runs done")).wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "alignment-sweep-launched.png"), full_page=True)
        logs = list((runs_dir / "_sweeps").glob("sweep-digits-*/sweep.log"))
        assert logs, "the sweep's log is in its folder of the run store"
    finally:
        subprocess.run(["pkill", "-f", "--sweep-id sweep-digits-"], check=False)
        page.close()
