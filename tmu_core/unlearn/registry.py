"""The method registry: one entry per unlearning method or control, carrying everything the pipeline, the
sweep tables and the dashboard need about it (config class, per-dataset defaults, label, short name,
colour, order, kind). Nothing else keeps a parallel list of methods.

Contract: `run(task, cfg, device, progress) -> MethodResult`. A method starts from a deep copy of
`task.original` (cached models are shared and never mutated) and returns the unlearned model plus an
optional typed report (TMU's easy/hard split), which the pipeline stores without knowing its type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from ..config import flatten, leaf_fields, with_flat
from ..errors import TMUError
from ..registry import Registry


class MethodReport:
    """What a method may hand back beside its model; every hook is optional (these defaults add nothing)."""

    audit_seconds: float = 0.0  # seconds spent on audit extras that unlearning does not need (left out of cost)

    def summary(self, gold_easy) -> dict:
        """Stored in metrics.json under the method's name."""
        return {}

    def soft_summary(self, p_right) -> dict:
        """With a gold ensemble: extra summary scored against p_i, the share of golds right on each D_f sample."""
        return {}

    def forget_columns(self) -> dict:
        """Extra per-sample columns for the D_f rows of samples.csv."""
        return {}

    def sample_groups(self, class_index: int) -> list:
        """Extra rows of samples.csv (evaluate.artifacts.SampleGroup), e.g. TMU's D_a."""
        return []

    def embedding_points(self, class_index: int) -> list:
        """Extra points for the embedding maps: (role, images, ids, labels)."""
        return []


@dataclass(frozen=True)
class MethodResult:
    model: nn.Module
    report: MethodReport | None = None


@dataclass(frozen=True)
class Display:
    """How a model row is named and drawn everywhere (tables, charts, pickers)."""

    label: str  # "Bad Teacher"
    short: str  # the paper's short name, "BT"
    color: str
    order: int
    kind: str = "method"  # method, control (never a default or a "best aligned" candidate) or reference


@dataclass(frozen=True, kw_only=True)  # registered by name: Method(config_cls=..., run=..., ...)
class Method:
    config_cls: type
    run: Callable  # (task, cfg, device, progress) -> MethodResult
    defaults: Callable[[str], dict]  # dataset -> flat overrides of config_cls defaults
    display: Display
    primary: bool = False  # the method whose cost is compared with the gold retrain (cost_ratio)
    embed: bool = False  # keep its penultimate activations for the embedding maps
    uses_gold: bool = False  # a control that reads the gold model (never a default, never "best aligned")
    after: tuple[str, ...] = ()  # methods whose reports it reads, when they are in the same run
    # (method, section): a control that runs that method's step starts from that method's settings of it in this
    # run (its defaults for the dataset and the run's overrides of it), then applies its own overrides
    settings_of: tuple[str, str] | None = None


METHODS: Registry[Method] = Registry("method")

# The two reference models every run trains; they are rows of every table but not methods.
REFERENCES = {
    "original": Display("Original", "Orig", "#9e9e9e", 0, "reference"),
    "gold": Display("Gold (retrained)", "Gold", "#212121", 1, "reference"),
}


def register(name: str, summary: str, method: Method) -> None:
    METHODS.register(name, summary)(method)


def primary_method() -> str:
    """The name of the primary method (the one registered with `primary=True`: TMU), whose report metrics.json
    stores under that name and whose cost is compared with the gold retrain."""
    names = [n for n in METHODS.names() if METHODS.get(n).primary]
    if len(names) != 1:
        raise TMUError(f"exactly one method must be registered as primary; found {names or 'none'}")
    return names[0]


def display(name: str) -> Display:
    """The display of a method or reference model; an unregistered name (an old run's) shows as itself."""
    if name in REFERENCES:
        return REFERENCES[name]
    if name in METHODS:
        return METHODS.get(name).display
    return Display(name, name, "#607d8b", 999)


def ordered(names) -> list[str]:
    """Model names in display order (references first, then methods, then controls)."""
    return sorted(names, key=lambda n: (display(n).order, n))


def run_order(names) -> list[str]:
    """The run's methods in the order given, except that a method runs after those it reads (`after`)."""
    names, out = list(names), []
    while names:
        ready = [n for n in names if not any(a in names for a in METHODS.get(n).after)]
        for n in ready or names[:1]:
            names.remove(n)
            out.append(n)
    return out


def method_config(name: str, dataset: str, overrides: dict | None = None, run_params: dict | None = None):
    """The config of a method for a dataset: class defaults, then per-dataset defaults, then overrides.

    run_params ({method: overrides (a dict or (setting, value) pairs)} of the whole run) matter only to a method with `settings_of`: it takes the
    named method's settings of that section as resolved in this run before its own overrides, so a control
    runs TMU's unlearning step with TMU's settings whatever flags changed them (--mechanism, --tmu-lr, ...)."""
    m = METHODS.get(name)
    valid = {f.name for f in leaf_fields(m.config_cls)}
    unknown = sorted(set(overrides or {}) - valid)
    if unknown:
        raise TMUError(f"unknown setting(s) {unknown} for method {name}; valid: {', '.join(sorted(valid))}")
    base = with_flat(m.config_cls(), m.defaults(dataset))
    if m.settings_of:
        source, section = m.settings_of
        followed = getattr(method_config(source, dataset, dict((run_params or {}).get(source) or {})), section)
        base = with_flat(base, {k: v for k, v in flatten(followed).items() if k in valid})
    return with_flat(base, overrides or {})


def run_method_config(name: str, run_cfg):
    """A method's config as a run (a RunConfig) resolves it: its dataset's defaults, the run's overrides for it,
    and, for a method that follows another's settings, that method's overrides in the same run. A run on the
    user's own model takes the defaults of "own-model" (the data are theirs, not a registered dataset's)."""
    dataset = "own-model" if run_cfg.own.active else run_cfg.data.dataset
    return method_config(name, dataset, run_cfg.params_for(name), dict(run_cfg.method_params))


def config_dict(cfg) -> dict:
    """A method config as flat JSON-ready {setting: value} (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in flatten(cfg).items()}
