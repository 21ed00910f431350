"""Unlearning methods, registered by name: finetune, neggrad, randlabel, badteacher and tmu.

Every method has one contract, `run(task, cfg, device, progress) -> Net`: it starts from a deep copy of
`task.original` (cached models are shared and never mutated) and returns the unlearned model. Each has a
frozen config dataclass with per-dataset defaults; the shared loop lives in `loop.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

from ..errors import TMUError
from ..registry import Registry


@dataclass(frozen=True)
class Method:
    config_cls: type
    run: Callable  # (task, cfg, device, progress) -> Net
    defaults: Callable[[str], dict]  # dataset -> overrides of config_cls defaults


METHODS: Registry[Method] = Registry("method")


def method_config(name: str, dataset: str, overrides: dict | None = None):
    """The config of a method for a dataset: class defaults, then per-dataset defaults, then overrides."""
    m = METHODS.get(name)
    valid = {f.name for f in fields(m.config_cls)}
    unknown = sorted(set(overrides or {}) - valid)
    if unknown:
        raise TMUError(f"unknown setting(s) {unknown} for method {name}; valid: {', '.join(sorted(valid))}")
    return replace(m.config_cls(**m.defaults(dataset)), **(overrides or {}))


from . import badteacher, finetune, neggrad, randlabel, tmu  # noqa: E402,F401  (fill the registry)
