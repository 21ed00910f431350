"""Widgets built from the config dataclasses' field metadata (help, min, max, choices).

The CLI builds its flags from the same metadata (tmu_core.options), so a setting added to a config is
reachable from both. Validation stays in the dataclasses: the page builds the config and shows the
TMUError of a bad combination.
"""

from __future__ import annotations

import streamlit as st

from tmu_core.config import flatten, leaf_fields


def field_input(f, default, key: str):
    """One widget for a dataclass field; its value starts at `default` (set once per page visit)."""
    meta = f.metadata
    label = f.name.replace("_", " ")
    helptext = meta.get("help")
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
    from math import floor, log10

    return 10.0 ** (floor(log10(abs(value))) - 1) if abs(value) < 1 else 10.0 ** floor(log10(abs(value))) / 10


def config_inputs(base, prefix: str, skip: tuple[str, ...] = (), columns: int = 3) -> dict:
    """Widgets for every field of the config object `base` (in `columns` columns); returns the overrides.

    Args:
        base: a config dataclass instance holding the defaults (e.g. a dataset's recipe).
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
