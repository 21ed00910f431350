"""Build CLI flags from the config models' fields and configs back from parsed flags.

The same field metadata (help, min, max, choices) drives the dashboard's widgets, so a hyperparameter
added to a dataclass is reachable from both without further code.
"""

from __future__ import annotations

import argparse

from .config import leaf_fields


def flag_name(prefix: str, name: str) -> str:
    return "--" + (f"{prefix}-" if prefix else "").replace("_", "-") + name.replace("_", "-")


def dest_name(prefix: str, name: str) -> str:
    return ((f"{prefix}_" if prefix else "") + name).replace("-", "_")


def add_config_args(
    parser: argparse.ArgumentParser, cls, prefix: str = "", skip: tuple[str, ...] = (), title: str | None = None
) -> None:
    """One flag per (leaf) field of config class `cls`; every flag defaults to None (= keep the config's value)."""
    group = parser.add_argument_group(title or cls.__name__)
    for f in leaf_fields(cls):
        if f.name in skip:
            continue
        default = f.default
        meta = f.metadata
        # argparse %-formats help texts: a literal '%' (e.g. "50%") must be doubled or --help crashes
        help_text = f"{meta.get('help', '')} (default: {default!r})".replace("%", "%%")
        kw: dict = {"dest": dest_name(prefix, f.name), "default": None, "help": help_text}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kw.update(nargs="+", type=meta.get("item_type") or (type(default[0]) if default else int))
        else:
            kw["type"] = type(default) if default is not None else str
            if "choices" in meta:
                kw["choices"] = list(meta["choices"])
                kw["metavar"] = "{" + ",".join(map(str, meta["choices"])) + "}"
        group.add_argument(flag_name(prefix, f.name), **kw)


def given(args: argparse.Namespace, cls, prefix: str = "") -> dict:
    """The (leaf) fields of `cls` the user set on the command line, by name."""
    out = {}
    for f in leaf_fields(cls):
        value = getattr(args, dest_name(prefix, f.name), None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def config_from_args(args: argparse.Namespace, cls, base=None, prefix: str = ""):
    """`base` (or the class defaults) with the user's flags applied, validated (a bad value is a TMUError)."""
    values = given(args, cls, prefix)
    return base.model_copy(update=values) if base is not None else cls(**values)
