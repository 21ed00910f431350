"""Unlearning methods and controls, registered by name (the contract and the shared loop are
`tmu_core.unlearn.registry` and `tmu_core.unlearn.loop`, below TMU's stages).

Each baseline is one small file over the shared loop; TMU lives in `tmu_core.tmu` and registers itself through
`tmu.py` here. Importing this package fills the registry.
"""

from ..unlearn.registry import (
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
from . import badteacher, controls, finetune, neggrad, randlabel, salun, scrub, tmu  # noqa: F401  (fill the registry)

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
