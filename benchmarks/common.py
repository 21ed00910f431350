"""What the benchmark scripts share: a parser with the CLI's run flags, --classes and --tag, and the provenance
lines (command, date and wall time, machine) that head every results file they write."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time

from tmu_core.cli import add_method_args, add_run_args  # the CLI's own flags


def script_parser(
    doc: str, *, methods: bool = True, classes: str = "all", classes_help: str = "'all' or comma-separated classes"
) -> argparse.ArgumentParser:
    """The flags of `python -m tmu_core run` (and each method's settings when `methods`), --classes and --tag."""
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_args(p)
    if methods:
        add_method_args(p)
    p.add_argument("--classes", default=classes, help=classes_help)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    return p


def provenance(script: str, argv, started: float, device, extra: str = "") -> list[str]:
    """The header lines naming the command as typed, the date and wall time since `started`, and the machine."""
    import torch

    return [
        f"- command: `python benchmarks/{script} {shlex.join(sys.argv[1:] if argv is None else argv)}`",
        f"- date: {dt.datetime.now().isoformat(timespec='minutes')}; wall time {time.perf_counter() - started:.0f} s{extra}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores; device: {device}; torch {torch.__version__}",
    ]
