"""The pages folder beside app.py, registered with st.navigation and no private Streamlit API.

Streamlit reads a pages/ folder beside the main script as a legacy multipage app until some session of the
server has run st.navigation. One case is left to it, and shown here: a deep link as the very first request
of a fresh server runs that page alone (README, "The pages folder"). AppTest starts every run as a fresh
server does, which makes it the place to show that case.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from apptools import APP, router_test
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = [APP, *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
PUBLIC = ("streamlit", "streamlit.testing")  # `import streamlit as st`; nothing under streamlit.runtime & co.


def test_the_dashboard_imports_no_streamlit_internals():
    for path in DASHBOARD:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] == "streamlit":
                    assert name in PUBLIC, f"{path.relative_to(ROOT)} imports {name}"
        assert "PagesManager" not in path.read_text(), path.name


def test_a_deep_link_as_a_fresh_servers_first_request_runs_the_page_alone(runs_dir):
    """The case the README names: no session has run st.navigation yet, so Streamlit's legacy mode runs the
    page by its file name, without app.py (no sidebar), and the page still works."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.switch_page("pages/audit.py").run()
    assert not at.exception
    assert at.title[0].value == "Easy/hard audit"
    assert not any("Compute device" in c.value for c in at.sidebar.caption)


def test_once_st_navigation_has_run_a_deep_link_goes_through_the_router(runs_dir):
    at = router_test(120)
    at.switch_page("pages/audit.py").run()  # the first run of this session, straight to a page
    assert not at.exception
    assert at.title[0].value == "Easy/hard audit"
    assert any("Compute device" in c.value for c in at.sidebar.caption)


def test_app_calls_st_navigation_before_its_slow_imports():
    """Until st.navigation has run, the sidebar lists pages/'s raw file names: app.py calls it first."""
    lines = APP.read_text().splitlines()
    nav_line = next(i for i, line in enumerate(lines) if "st.navigation(" in line)
    slow = [
        i for i, line in enumerate(lines) if line.startswith(("from tmu_core", "import torch", "from ui import cache"))
    ]
    assert slow and nav_line < min(slow)
