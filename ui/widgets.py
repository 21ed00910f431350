"""Widgets built from the config models' fields (help, min, max, choices).

The CLI builds its flags from the same metadata (tmu_core.options), so a setting added to a config is
reachable from both. Validation stays in the config models: the page builds the config and shows the
TMUError of a bad combination.
"""

from __future__ import annotations

import re
from math import floor, log10

import streamlit as st

from tmu_core.config import flatten, leaf_fields
from ui import tables

# A core message names the CLI's flags; on the dashboard it names the widget that sets the same thing.
FLAG_WIDGETS = (
    ("a larger aux fraction (--aux-fraction)", "a larger Aux fraction (Forget set page, Run settings)"),
    ("(--gold none)", "(gold: none)"),
    ("--gold none", "gold: none"),
    ("--gold retrain", "gold: retrain"),
    ("--gold-weights FILE", "the gold weights field"),
    ("--gold-seeds", "Gold models (K) on the Forget set page"),
    ("--aux-fraction", "the Aux fraction field (Forget set page, Run settings)"),
    ("--data-root DIR", "the data folder field"),
    ("--manifest CSV", "a manifest"),
    ("--image-size", "the image size field"),
    ("--input-mean", "the input mean field"),
    ("--input-std", "the input std field"),
    ("--forget-list", "the forget list field"),
    ("--original-weights", "the original weights field"),
    ("--model", "the model field"),
    ("--tmu-cf-held-out", "the cf held out setting (TMU's tab on the Run page)"),
)
_FLAG = re.compile(r"--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def widget_words(text) -> str:
    """`text` from the core (a warning, a refusal, a help line) with each CLI flag replaced by the dashboard widget
    that sets it; a flag without a widget of its own reads as its setting's name ('--tmu-epochs' as 'tmu epochs')."""
    out = str(text)
    for flag, widget in FLAG_WIDGETS:
        out = out.replace(flag, widget)
    return _FLAG.sub(lambda m: "the " + m.group(1).replace("-", " ") + " setting", out)


def field_input(f, default, key: str):
    """One widget for a config field (tmu_core.config.Leaf); its value starts at `default` (set once per page visit)."""
    meta = f.metadata
    label = f.name.replace("_", " ")
    helptext = widget_words(meta["help"]) if meta.get("help") else None
    st.session_state.setdefault(key, list(default) if isinstance(default, tuple) else default)
    if isinstance(default, bool):
        return st.checkbox(label, key=key, help=helptext)
    if isinstance(default, tuple):
        return tuple(st.multiselect(label, list(meta.get("choices", default)), key=key, help=helptext))
    if "choices" in meta:
        return st.selectbox(label, list(meta["choices"]), key=key, help=helptext)
    if isinstance(default, int):
        return int(
            st.number_input(
                label,
                min_value=_num(meta.get("min"), int),
                max_value=_num(meta.get("max"), int),
                step=1,
                key=key,
                help=helptext,
            )
        )
    if isinstance(default, float):
        return float(
            st.number_input(
                label,
                min_value=_num(meta.get("min"), float),
                max_value=_num(meta.get("max"), float),
                format="%g",
                step=_step(default),
                key=key,
                help=helptext,
            )
        )
    return st.text_input(label, key=key, help=helptext)


def _num(bound, kind):
    """Streamlit wants min, max, step and value of one numeric type."""
    return None if bound is None else kind(bound)


def _step(value: float) -> float:
    """A step of about a tenth of the value's magnitude (0.01 for lr 0.05, 0.1 for 3.0)."""
    if value == 0:
        return 0.01
    return 10.0 ** (floor(log10(abs(value))) - 1) if abs(value) < 1 else 10.0 ** floor(log10(abs(value))) / 10


def config_inputs(base, prefix: str, skip: tuple[str, ...] = (), columns: int = 3) -> dict:
    """Widgets for every field of the config object `base` (in `columns` columns); returns the overrides.

    Args:
        base: a config instance holding the defaults (e.g. a dataset's recipe).
        prefix: widget key prefix, unique per page and per base (e.g. "run_train_digits_").
    Returns: {field: value} for the fields whose value differs from `base`.
    """
    chosen = [f for f in leaf_fields(type(base)) if f.name not in skip]
    values = flatten(base)
    cols = st.columns(columns)
    out = {}
    for i, f in enumerate(chosen):
        default = values[f.name]
        with cols[i % columns]:
            value = field_input(f, default, f"{prefix}{f.name}")
        if value != default:
            out[f.name] = value
    return out


def whole_number_error(text: str, low: int, high: int) -> str | None:
    """Why `text` (a typed field) is not a whole number from `low` to `high`; None when it is."""
    t = (text or "").strip()
    if not t:
        return f"Enter a whole number from {low} to {high}"
    if not (t.isdigit() or (t[0] in "+-" and t[1:].isdigit())):
        return f"'{t}' is not a whole number: enter one from {low} to {high}"
    if not low <= int(t) <= high:
        return f"{int(t)} is out of range: enter a whole number from {low} to {high}"
    return None


def text_table(df, key: str | None = None, distance: bool = False, helps: dict | None = None, **kwargs):
    """A results table as text (ui.tables.readable: '—' for a missing value, counts whole, percentages one
    decimal); a column holding a '—' says why on hover of its header, beside its own `helps` entry."""
    text = tables.readable(df, distance)
    helps = helps or {}
    why = {c: h for c, h in tables.absent_help(text).items() if not str(helps.get(c, "")).startswith(tables.ABSENT)}
    config = {
        c: st.column_config.TextColumn(c, help=" · ".join(h for h in (helps.get(c), why.get(c)) if h) or None)
        for c in map(str, text.columns)
        if c in why or c in helps
    }
    config.update(kwargs.pop("column_config", {}))
    return st.dataframe(text, key=key, hide_index=True, column_config=config, **kwargs)
