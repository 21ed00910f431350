"""The dashboard's pages and assets, with absolute paths, so app.py and every page link share one list.

Absolute paths let a page run alone (AppTest.from_file, `streamlit run pages/x.py`) and still link to the
others.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

# key: (file, title, icon, section)
PAGES = {
    "about": ("about.py", "About TMU", ":material/school:", "Learn"),
    "demo": ("demo.py", "Guided demo", ":material/co_present:", "Learn"),
    "forget_set": ("forget_set.py", "Forget set", ":material/photo_library:", "Set up"),
    "run": ("run.py", "Run", ":material/play_circle:", "Set up"),
    "audit": ("audit.py", "Easy/hard audit", ":material/fact_check:", "Inspect a run"),
    "features": ("features.py", "Features", ":material/bar_chart:", "Inspect a run"),
    "embeddings": ("embeddings.py", "Embeddings", ":material/scatter_plot:", "Inspect a run"),
    "alignment": ("alignment.py", "Alignment", ":material/balance:", "Inspect a run"),
}


def page(key: str) -> st.Page:
    file, title, icon, _ = PAGES[key]
    return st.Page(ROOT / "pages" / file, title=title, icon=icon, url_path=key, default=key == "about")


def sections() -> dict[str, list[st.Page]]:
    out: dict[str, list[st.Page]] = {}
    for key, (_, _, _, section) in PAGES.items():
        out.setdefault(section, []).append(page(key))
    return out


def link(key: str, label: str | None = None) -> None:
    """A link to another page of the dashboard."""
    st.page_link(page(key), label=label or PAGES[key][1], icon=PAGES[key][2])


@functools.cache
def help_text(name: str) -> str:
    """A help text from assets/help/<name>.md (our own Markdown, shown with st.markdown)."""
    return (ASSETS / "help" / f"{name}.md").read_text()


def feature_text(short: bool = False) -> str:
    """The one definition of NF, AF and CF (the paper's), shown by the About page and the guided demo; `short`:
    the first sentence of each (the same definition, for a projected slide)."""
    text = help_text("feature_definitions")
    if not short:
        return text
    items = [" ".join(item.split()) for item in text.split("* ")[1:]]
    return "\n".join(f"* {item[: item.index('. ') + 1] if '. ' in item else item}" for item in items)


def asset(name: str) -> Path:
    return ASSETS / name
