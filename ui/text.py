"""User text shown as text: class names, file paths, run errors, dataset and model names come from files (an
image folder's names, a manifest's labels, a forget list, a hand-edited metrics.json) or from a form, and
`st.markdown`, `st.caption`, `st.error` and friends render Markdown; plotly renders a few HTML tags in chart
labels. `plain` and `chart_text` make such text inert, so `![b](http://host/x.png)` is shown, never fetched, and
`:x:` stays three characters, never an emoji. Every page passes user text through one of them (a test checks)."""

from __future__ import annotations

import html
import re

# The characters that make Markdown (and Streamlit's :red[text] and $maths$) do something in one line of text:
# links and images (the brackets: `](` without `[` is nothing), HTML (<>), emphasis, code, headings and list
# markers, maths. Escaped with a backslash (CommonMark), the text reads as it was stored; '.', '-', '!', '|' and
# parentheses stay as they are, so file names, ids and sentences read plainly.
_SPECIAL = re.compile(r"([\\`*_{}\[\]#+<>~$])")
# Streamlit turns `:name:` into an emoji or icon and `:name[...]` into coloured text after Markdown has read the
# escapes, so a backslash cannot stop it: a zero-width space after the colon does (the text reads the same).
_SHORTCODE = re.compile(r":(?=[\w/+-])")
ZWSP = "\u200b"
MAX_SHOWN = 2000  # characters of one user string shown; the rest is cut (a 20 MB line must not freeze a page)


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} characters)"


def plain(text) -> str:
    """`text` (any value) for a Markdown element: every Markdown character escaped, emoji and colour shortcodes
    broken, line breaks kept as spaces, at most MAX_SHOWN characters."""
    text = _bounded(" ".join(str(text).split("\n")))
    return _SHORTCODE.sub(":" + ZWSP, _SPECIAL.sub(r"\\\1", text))


def chart_text(text) -> str:
    """`text` (any value) for a plotly title, axis or annotation: its HTML-like tags (<a>, <b>, <br>) shown as
    written, at most MAX_SHOWN characters."""
    return html.escape(_bounded(" ".join(str(text).split("\n"))), quote=False)
