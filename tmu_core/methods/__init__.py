"""Unlearning methods and controls, registered by name (see `registry` for the contract).

The shared loop lives in `loop.py`; each baseline is one small file over it; TMU lives in `tmu_core.tmu`
and registers itself through `tmu.py` here. Importing this package fills the registry.
"""

from . import badteacher, controls, finetune, neggrad, randlabel, salun, scrub, tmu  # noqa: F401  (fill the registry)
from .registry import (
    METHODS,
    REFERENCES,
    Display,
    Method,
    MethodReport,
    MethodResult,
    config_dict,
    display,
    method_config,
    ordered,
    primary_method,
    run_method_config,
    run_order,
)

__all__ = [
    "METHODS",
    "REFERENCES",
    "Display",
    "Method",
    "MethodReport",
    "MethodResult",
    "config_dict",
    "display",
    "method_config",
    "ordered",
    "primary_method",
    "run_method_config",
    "run_order",
]
