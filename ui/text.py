"""Stored text shown as text: class names, run errors, dataset and model names come from files in the run
store (an image folder's names, a hand-edited metrics.json), and `st.markdown`, `st.caption`, `st.error` and
friends render Markdown. `plain` escapes it, so `![b](http://host/x.png)` is shown, never fetched."""

from __future__ import annotations

import re

# The characters that make Markdown (and Streamlit's :red[text] and $maths$) do something: links and images
# ([]()!), HTML (<>), emphasis, code, tables, headings, maths. Escaped with a backslash (CommonMark), the
# text reads as it was stored; '.', '-' and ':' stay as they are, so file names and ids read plainly.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~$])")


def plain(text) -> str:
    """`text` (any value) with every Markdown character escaped and line breaks kept as spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split("\n")))
