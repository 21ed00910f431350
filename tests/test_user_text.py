"""User text stays text: every string from a file or a form (class names, paths, forget-list lines, run errors)
reaches Streamlit's Markdown elements through ui.text.plain, and plotly labels through chart_text."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ui.text import ZWSP, chart_text, plain

pytestmark = pytest.mark.fast
ROOT = Path(__file__).resolve().parents[1]

# st.* calls that render their first argument as Markdown
MARKDOWN_CALLS = {
    "markdown",
    "error",
    "warning",
    "info",
    "success",
    "caption",
    "subheader",
    "header",
    "title",
    "write",
    "toast",
}
# calls whose result is safe Markdown: the escapers, numbers, and the project's own labels
SAFE_CALLS = {
    "plain",
    "chart_text",
    "len",
    "int",
    "float",
    "round",
    "model_label",
    "help_text",
    "feature_text",
    "describe",
    "stage_line",
}
# names that hold text from a file or a form: an error (quoting paths and names), a class name, a path, a note
USER_TEXT = re.compile(
    r"\b(exc|error|errors|\w+_error|rejected|notes?|warnings?|texts?|tail|paths?|classes|\w*class_name|"
    r"dataset|\w+_weights|forget_list|manifest|source|stage|ui_message|selected|data_root)\b"
)


def _unsafe_parts(node) -> list:
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.JoinedStr):
        return [p for v in node.values if isinstance(v, ast.FormattedValue) for p in _unsafe_parts(v.value)]
    if isinstance(node, ast.BinOp):
        return _unsafe_parts(node.left) + _unsafe_parts(node.right)
    if isinstance(node, ast.IfExp):
        return _unsafe_parts(node.body) + _unsafe_parts(node.orelse)
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in SAFE_CALLS:
        return []
    return [node]


def test_pages_pass_user_text_through_plain():
    found = []
    for f in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]:
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MARKDOWN_CALLS:
                for arg in n.args[:1]:
                    for part in _unsafe_parts(arg):
                        src = ast.unparse(part)
                        if USER_TEXT.search(src):
                            found.append(f"{f.relative_to(ROOT)}:{n.lineno}: {n.func.attr}({src[:80]})")
    assert found == [], "user text shown as Markdown; wrap it in ui.text.plain:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "text",
    [
        "![p](http://127.0.0.1:9999/x.png)",
        "[click](javascript:alert(1))",
        "<img src=x onerror=alert(1)>",
        "**bold**",
        "`code`",
        "$x^2$",
        "# heading",
        "| a | b |",
    ],
)
def test_plain_escapes_every_markdown_construct(text):
    out = plain(text)
    assert not re.search(r"(?<!\\)[\[\]<>*`$#]", out), out  # each special character escaped
    assert out.replace("\\", "").replace(ZWSP, "") == text  # and reads as it was written


def test_plain_breaks_emoji_and_colour_shortcodes():
    for text in (":x:", ":red[alarm]", ":material/home:", "see :+1: here"):
        out = plain(text)
        assert not re.search(r":[\w/+-]", out), out
        assert out.replace("\\", "").replace(ZWSP, "") == text


def test_plain_and_chart_text_bound_and_flatten():
    assert "\n" not in plain("a\nb") and len(plain("x" * 10_000_000)) < 2100
    assert chart_text("<a href='http://evil'>x</a>") == "&lt;a href='http://evil'&gt;x&lt;/a&gt;"
