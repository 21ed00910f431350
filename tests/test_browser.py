"""A real browser through the dashboard: `streamlit run app.py` headless on a loopback port, Debian's Chromium
driven by Playwright over every page of the synthetic stored runs (conftest.synthetic_runs). No Streamlit error box anywhere; charts and galleries
present; the audit CSV downloads. Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import re
import shutil
import signal

import pytest
from apptools import ARTIFACTS, TITLES, start_streamlit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# page key -> (what must be on it once it has rendered, how many)
EXPECT = {
    "about": [('[data-testid="stImage"] img', 1)],
    "demo": [('[data-testid="stDataFrame"]', 1)],
    "forget_set": [('[data-testid="stDataFrame"]', 1), ('[data-testid="stMetric"]', 5)],
    "run": [('[data-testid="stDataFrame"]', 1)],
    "audit": [(".js-plotly-plot", 1), ('[data-testid="stDataFrame"]', 2)],
    "features": [(".js-plotly-plot", 3)],
    "embeddings": [(".js-plotly-plot", 1)],
    "alignment": [(".js-plotly-plot", 3), ('[data-testid="stDataFrame"]', 2)],
}


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
def server(browser, synthetic_runs, tmp_path_factory):
    """The dashboard on the synthetic runs, its address opened once first: on a fresh server a deep link runs its
    page alone until some session has run app.py's st.navigation (README, "The pages folder"), and the tests below
    open pages by their address in any order."""
    runs_dir, ids = synthetic_runs
    proc, port = start_streamlit(runs_dir, tmp_path_factory.mktemp("streamlit") / "streamlit.log")
    first = browser.new_page()
    first.goto(f"http://127.0.0.1:{port}")
    first.get_by_role("heading", name=TITLES["about"], level=1).wait_for(timeout=120_000)
    first.close()
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
    expect(alerts.filter(has_text="Enter a whole number from 1 to 124; still 110.")).to_have_count(1)
    expect(size).to_have_text("110")
    field.fill("40")
    field.press("Enter")
    expect(size).to_have_text("40")
    expect(alerts.filter(has_text="Enter a whole number")).to_have_count(0)  # (the thin-evidence note may stay)
    page.get_by_text("hand-pick", exact=True).click()
    # the gallery of hand-pick mode (keyed fs_pick_...), drawn by the current run (a rerun's leftovers are stale)
    grid = page.locator(
        '[data-testid="stElementContainer"][class*="st-key-fs_pick_"]:not([data-stale="true"]) '
        '[data-testid="stDataFrame"]'
    )
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
    for label in ("Gold A_f (the target)", "TMU A_f", "TMU |Δ| to gold", "Closest to gold"):
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
        for log in (runs_dir / "_sweeps").glob("sweep-digits-*/sweep.log"):
            _stop_sweep(log.parent.name)
        page.close()


def _stop_sweep(sweep_id: str) -> None:
    """Stop the background sweep this test started: the process whose command line names exactly its id (in its
    own session, so its group holds the sweep and nothing else)."""
    from pathlib import Path

    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--sweep-id" in args and args[args.index(b"--sweep-id") + 1 :][:1] == [sweep_id.encode()]:
            try:
                os.killpg(int(proc.name), signal.SIGTERM)
            except (ProcessLookupError, PermissionError, ValueError):
                pass


# ---------------------------------------------------------------- a fresh clone: the bundled demo
FOLD = {"width": 1280, "height": 720}
# Every tick label of a chart: (font size in px, fill colour).
TICK_STYLES = """el => Array.from(el.querySelectorAll('.xtick text, .ytick text'))
    .map(t => [parseFloat(getComputedStyle(t).fontSize), getComputedStyle(t).fill])"""
# The text of a chart (title, bar labels, notes) that runs past the chart's own box: cut off on the screen.
CUT_TEXT = """el => {
    const box = el.querySelector('.main-svg').getBoundingClientRect();
    return Array.from(el.querySelectorAll('.gtitle, .bartext, .annotation-text, .xtick text, .ytick text'))
        .filter(t => t.textContent.trim())
        .map(t => [t.textContent, t.getBoundingClientRect()])
        .filter(([_, r]) => r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1)
        .map(([text, r]) => text);
}"""
# A table (glide grid) whose columns run past its box: the right-hand ones hidden behind a scroll.
TABLE_OVERFLOW = (
    """el => { const s = el.querySelector('.dvn-scroller'); return s ? s.scrollWidth - s.clientWidth : 0; }"""
)


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """The dashboard on an empty run store, as on a fresh clone (nothing trained, nothing cached)."""
    runs_dir = tmp_path_factory.mktemp("fresh") / "runs"
    proc, port = start_streamlit(runs_dir, tmp_path_factory.mktemp("streamlit-fresh") / "streamlit.log")
    yield f"http://127.0.0.1:{port}", runs_dir
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_demo_first_result_in_under_10_seconds_on_a_fresh_store(browser, fresh_server):
    """About → 'Open the digits demo': the guided demo shows the bundled run's first result (gold keeps part of
    D_f) within 10 s of the click, at 1280×720, with no training."""
    import json
    import time

    from tmu_core import demo

    url, runs_dir = fresh_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport=FOLD)
    page.goto(url)
    settle(page, "about")
    gold = json.loads((demo.bundle_root() / demo.RUN_ID / "metrics.json").read_text())["models"]["gold"]["acc_forget"]
    t0 = time.monotonic()
    page.get_by_role("button", name="Open the digits demo").click()
    page.get_by_text(re.compile(rf"still recognises {gold:.1f}%")).wait_for(timeout=10_000)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=10_000)
    elapsed = time.monotonic() - t0
    page.screenshot(path=str(ARTIFACTS / "demo-first-result.png"))
    print(f"click to first result: {elapsed:.1f} s")
    assert elapsed < 10.0
    assert f"run={demo.RUN_ID}" in page.url  # the selection is in the address
    assert not list(runs_dir.glob("demo-2*"))  # nothing was launched
    page.close()


def test_presentation_mode_keeps_every_chart_above_the_fold(browser, fresh_server):
    url, _ = fresh_server
    page = browser.new_page(viewport=FOLD)
    page.goto(f"{url}/demo")
    settle(page, "demo")
    page.get_by_text("Presentation mode").click()
    _idle(page)
    assert page.locator('[data-testid="stExpander"]', has_text="Thin evidence").count() == 1  # folded to one line
    titles = (
        None,
        "The twin's D_a",
        "Features by label",
        "labels vs gold on D_f",
        "Accuracy on the forget set",
        "to gold on D_f",
    )
    for step, title in enumerate(titles):
        # this step's own chart (found by its title), not the last step's while it is being replaced
        chart = (
            page.locator('[data-testid="stDataFrame"]')
            if title is None
            else page.locator(".js-plotly-plot", has_text=title)
        ).first
        chart.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        box = chart.bounding_box()
        assert box["y"] + box["height"] <= FOLD["height"] + 2, (
            f"step {step + 1}: chart ends at {box['y'] + box['height']:.0f}px"
        )
        assert page.evaluate("window.scrollY") == 0
        # the text on the screen (a folded expander's contents are laid out, hidden, below it)
        bottoms = page.evaluate("""Array.from(document.querySelectorAll('.block-container [data-testid="stMarkdownContainer"]'))
            .filter(e => e.checkVisibility({visibilityProperty: true}) && e.innerText.trim())
            .map(e => e.getBoundingClientRect().bottom)""")
        assert max(bottoms) <= FOLD["height"] + 2, f"step {step + 1}: text ends at {max(bottoms):.0f}px"
        for name in ("Back", "Next"):  # the buttons read whole, not cut to an initial
            button = page.get_by_role("button", name=name)
            assert button.evaluate("b => b.scrollWidth <= b.clientWidth + 1")
        if title is not None:  # tick labels read from the back of a room: large and near black, not light grey
            ticks = chart.evaluate(TICK_STYLES)
            assert ticks and all(size >= 16 and fill == "rgb(33, 33, 33)" for size, fill in ticks), ticks[:3]
            assert not chart.evaluate(CUT_TEXT), f"step {step + 1}: cut labels"
        page.screenshot(path=str(ARTIFACTS / f"demo-present-{step + 1}.png"))
        if step < 5:
            page.get_by_role("button", name="Next").click()
            _idle(page)
    page.close()


def test_selected_run_and_tab_survive_a_reload(browser, fresh_server):
    """A reload used to switch to the newest run and reset the Alignment tab."""
    from tmu_core import demo

    url, runs_dir = fresh_server
    demo.install(root=runs_dir)
    page = browser.new_page(viewport=FOLD)
    page.goto(f"{url}/alignment?run={demo.RUN_ID}")
    settle(page, "alignment")
    page.get_by_role("tab", name="Sweeps over forget classes").click()
    _idle(page)
    assert "tab=" in page.url and f"run={demo.RUN_ID}" in page.url
    page.reload()
    page.get_by_role("heading", name=TITLES["alignment"], level=1).wait_for(timeout=60_000)
    _idle(page)
    assert page.get_by_role("tab", name="Sweeps over forget classes").get_attribute("aria-selected") == "true"
    assert demo.RUN_ID in page.locator('[data-testid="stSidebar"]').inner_text()
    page.close()


def test_a_teachers_screen_at_1280x720_cuts_no_label_and_hides_no_column(browser, server):
    """At 1280x720: the |Δ| chart's bar labels and noise-floor note, the audit chart's title, the verdict table's
    standing, the Runs table's right-hand columns, the gallery's last column and the sidebar run's date all show."""
    url, ids, _ = server
    page = browser.new_page(viewport=FOLD)
    page.goto(f"{url}/alignment?run={ids[0]}")
    settle(page, "alignment")
    delta = page.locator(".js-plotly-plot", has_text="to gold on D_f").first
    assert delta.evaluate(CUT_TEXT) == []
    assert "noise floor" in delta.inner_text()
    verdict_table = page.locator('.st-key-align_verdict [data-testid="stDataFrame"]')
    assert verdict_table.evaluate(TABLE_OVERFLOW) <= 1  # "standing" read "closest to gol", the last columns hidden
    page.screenshot(path=str(ARTIFACTS / "alignment-1280.png"), full_page=True)
    # the sidebar's run label keeps its date in view (a narrow box cuts a label's end)
    assert page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').evaluate(DATE_IN_VIEW) is True
    page.goto(f"{url}/audit?run={ids[0]}")
    settle(page, "audit")
    confusion = page.locator(".js-plotly-plot", has_text="labels vs gold").first
    assert confusion.evaluate(CUT_TEXT) == []
    page.goto(f"{url}/run?run={ids[0]}")
    settle(page, "run")
    for table in page.locator('[data-testid="stDataFrame"]').all():  # the verdict table and the Runs table
        assert table.evaluate(TABLE_OVERFLOW) <= 1
    page.screenshot(path=str(ARTIFACTS / "run-1280.png"), full_page=True)
    page.goto(f"{url}/forget_set")
    settle(page, "forget_set")
    gallery = page.locator('[data-testid="stDataFrame"]').first
    assert gallery.evaluate(TABLE_OVERFLOW) <= 1
    page.screenshot(path=str(ARTIFACTS / "forget_set-1280.png"))
    page.close()


# Whether the sidebar's run picker shows its run's date ('MM-DD HH:MM') whole, not cut by the box (null: no date).
DATE_IN_VIEW = """box => {
    const re = /\\d\\d-\\d\\d \\d\\d:\\d\\d/;
    for (const input of box.querySelectorAll('input')) {  // a value shown in an input: measure its text
        const m = re.exec(input.value || '');
        if (!m) continue;
        const cs = getComputedStyle(input);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = cs.font;
        const end = ctx.measureText(input.value.slice(0, m.index + m[0].length)).width;
        return end <= input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) + 1;
    }
    const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {  // a value shown as text: where it ends
        const m = re.exec(n.textContent);
        if (!m) continue;
        const range = document.createRange();
        range.setStart(n, m.index);
        range.setEnd(n, m.index + m[0].length);
        let clip = n.parentElement;  // the element that cuts the text (overflow hidden), else the box
        while (clip !== box && getComputedStyle(clip).overflow === 'visible') clip = clip.parentElement;
        return range.getBoundingClientRect().right <= clip.getBoundingClientRect().right + 1;
    }
    return null;
}"""


def test_resume_after_cancel_follows_the_run_again(browser, server):
    """Launch, Cancel, Resume: the page showed "Selected: ... — queued" and no progress box, even after the run
    ended, until a reload (the Resume button reruns only the polling fragment, which kept no poll)."""
    from playwright.sync_api import expect

    url, _, runs_dir = server
    page = browser.new_page(viewport=FOLD)
    page.goto(f"{url}/run")
    settle(page, "run")
    page.get_by_role("button", name="Launch run").click()
    progress = page.locator('[data-testid="stExpander"]', has=page.get_by_role("button", name="Cancel"))
    expect(progress).to_have_count(1, timeout=60_000)
    run_id = re.match(r"\S+", progress.first.inner_text().strip()).group(0)
    try:
        progress.get_by_role("button", name="Cancel").click()
        resume = page.get_by_role("button", name="Resume this run")
        expect(resume).to_be_visible(timeout=90_000)
        resume.click()
        expect(progress).to_have_count(1, timeout=30_000)  # followed again, with its progress box
        expect(progress.first).to_contain_text(run_id)
        _idle(page)
        expect(page.get_by_text(re.compile(rf"Selected: {re.escape(run_id)} — queued"))).to_have_count(0)
        expect(page.get_by_role("button", name="Resume this run")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "run-resumed.png"))
    finally:
        from tmu_core import store
        from tmu_core.jobs import launch

        launch.cancel(store.open_run(run_id, runs_dir))
        page.close()


def test_the_demo_keeps_its_step_and_mode_through_a_reload(browser, fresh_server):
    url, _ = fresh_server
    page = browser.new_page(viewport=FOLD)
    page.goto(f"{url}/demo")
    settle(page, "demo")
    for _ in range(3):
        page.get_by_role("button", name="Next").click()
        _idle(page)
    page.get_by_text("Presentation mode").click()
    _idle(page)
    assert "step=4" in page.url and "present=1" in page.url
    page.reload()
    page.get_by_role("heading", name=TITLES["demo"], level=1).wait_for(timeout=60_000)
    _idle(page)
    page.locator(".js-plotly-plot", has_text="labels vs gold").first.wait_for(timeout=30_000)
    assert page.get_by_role("switch", name="Presentation mode").is_checked()
    assert "step=4" in page.url and "present=1" in page.url
    page.close()


def test_your_model_entry_shows_user_text_as_text_in_a_real_browser(browser, server):
    """The Your model entry: a path outside the folders the dashboard reads (/etc/passwd as forget list) is refused
    without a word of the file; a typed path holding an image link and an emoji code is shown as typed: the
    browser fetches nothing and draws no emoji."""
    from playwright.sync_api import expect

    url, _, runs_dir = server
    page = open_page(browser, url, "forget_set")
    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if "beacon" in r.url else None)
    page.get_by_text("Your model: TMU on a model you trained").click()
    alerts = page.locator('[data-testid="stAlert"]')

    def launch(data_folder: str, forget_list: str) -> None:
        page.get_by_label("data folder", exact=True).fill(data_folder)
        page.get_by_label("original weights", exact=True).fill(str(runs_dir / "W.pt"))
        page.get_by_label("forget list", exact=True).fill(forget_list)
        page.get_by_label("forget list", exact=True).press("Enter")
        page.get_by_role("button", name="Launch TMU on your model").click()

    launch(str(runs_dir), "/etc/passwd")
    refused = alerts.filter(has_text="outside the folders this dashboard reads")
    expect(refused).to_have_count(1)
    assert "root:" not in refused.inner_text()
    hostile = f"{runs_dir}/![p](http://127.0.0.1:9/beacon.png) :x:"
    launch(hostile, "")
    box = alerts.filter(has_text="does not exist")
    expect(box).to_have_count(1)
    text = box.inner_text().replace("\u200b", "")
    assert "![p](http:/127.0.0.1:9/beacon.png) :x:" in text, text  # as typed (the path made canonical)
    assert box.locator("img").count() == 0 and "❌" not in text
    page.screenshot(path=str(ARTIFACTS / "forget_set-your-model-text.png"), full_page=True)
    page.close()
    assert fetched == [], fetched
