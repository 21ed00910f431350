"""Stored text shown as text: class names, run errors, dataset and model names come from files in the run
store (an image folder's names, a hand-edited metrics.json), and `st.markdown`, `st.caption`, `st.error` and
friends render Markdown. `plain` escapes it, so `![b](http://host/x.png)` is shown, never fetched."""
from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; Streamlit's own directives
# (:material/icon:, :red[text], $maths$) are made of them too.
_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text) -> str:
    """`text` (any value) with every Markdown character escaped and line breaks kept as spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split("\n")))
