"""The dashboard's one use of a Streamlit internal (ui.nav.ensure_router) still matches Streamlit: when this
fails, Streamlit changed how a pages/ folder beside the main script is handled, and ensure_router (and the note
in the README) must follow, or can go."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from streamlit.commands import navigation
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_flag():
    before = PagesManager.uses_pages_directory
    yield
    PagesManager.uses_pages_directory = before


def test_a_pages_folder_still_means_legacy_mode_until_st_navigation_runs(tmp_path, restore_flag):
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "a.py").write_text("")
    (tmp_path / "app.py").write_text("")
    PagesManager.uses_pages_directory = None
    PagesManager(str(tmp_path / "app.py"))  # the first manager of a server decides, for every session
    assert PagesManager.uses_pages_directory is True
    # the flag is what the script runner reads to run the legacy pages/ navigation instead of the main script ...
    assert "if PagesManager.uses_pages_directory:\n" in inspect.getsource(script_runner.ScriptRunner)
    assert "_mpa_v1(" in inspect.getsource(script_runner.ScriptRunner)
    # ... and st.navigation turns it off the way ensure_router does
    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(navigation.navigation)


def test_ensure_router_leaves_legacy_mode_and_reruns(restore_flag):
    script = (
        "import streamlit as st\n"
        "from streamlit.runtime.pages_manager import PagesManager\n"
        "st.session_state.setdefault('runs', 0)\n"
        "st.session_state.runs += 1\n"
        "if st.session_state.runs == 1:\n"
        "    PagesManager.uses_pages_directory = True  # as on a fresh server with a pages/ folder\n"
        "from ui import nav\n"
        "nav.ensure_router()\n"
        "st.write('page body')\n"
    )
    at = AppTest.from_string(script).run()
    assert not at.exception
    assert PagesManager.uses_pages_directory is False
    assert at.session_state["runs"] == 2  # it reran once, then drew the page
    assert [m.value for m in at.markdown] == ["page body"]


def test_app_calls_st_navigation_before_its_slow_imports():
    """Until st.navigation has run, the sidebar lists pages/'s raw file names: app.py calls it first."""
    lines = (ROOT / "app.py").read_text().splitlines()
    nav_line = next(i for i, line in enumerate(lines) if "st.navigation(" in line)
    slow = [
        i for i, line in enumerate(lines) if line.startswith(("from tmu_core", "import torch", "from ui import cache"))
    ]
    assert slow and nav_line < min(slow)
