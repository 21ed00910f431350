"""Helpers for the CLI tests: tiny budgets, an offline switch, the CLI as a subprocess, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# `train` / `run` flags: digits, 30 training images per class (300 in all), class 8, 20 forgotten.
TINY_TRAIN = [
    "--dataset",
    "digits",
    "--train-per-class",
    "30",
    "--forget-class",
    "8",
    "--forget-count",
    "20",
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--device",
    "cpu",
]
# One cheap method for runs whose science does not matter to the test.
TINY_METHODS = ["--methods", "finetune", "--finetune-epochs", "1"]
# TMU at its smallest budget: one twin epoch, one CF epoch, one unlearning epoch.
TINY_TMU = ["--tmu-twin-epochs", "1", "--tmu-clf-epochs", "20", "--tmu-cf-epochs", "1", "--tmu-epochs", "1"]


def default_config() -> dict:
    """config.json of a run with every default: for store tests whose run content does not matter (a config
    without its data, forget and train sections reads as damaged)."""
    from tmu_core.config import RunConfig, run_config_to_dict

    return run_config_to_dict(RunConfig())


# Blocks every network connection in a Python process: how "offline" is simulated on a machine that is online.
NO_NETWORK = (
    "import socket\n"
    "def _deny(*a, **k):\n"
    "    raise OSError('network is disabled in this test')\n"
    "socket.getaddrinfo = _deny\n"
    "socket.create_connection = _deny\n"
    "socket.socket.connect = _deny\n"
)


def cli_env(runs_dir: Path, **extra: str) -> dict:
    """Environment of a CLI subprocess: its own run store, one thread each (tmu_core is installed: `make setup`)."""
    return {
        **os.environ,
        "TMU_RUNS_DIR": str(runs_dir),
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def hold_in(stage: str, until: Path | None = None) -> str:
    """A prelude for `start_cli`: the run stops at its first cancel check in `stage` (each progress report asks
    whether the run was cancelled), writes `held-<stage>` beside its run store and waits there until the file
    `until` exists, or without `until` until it is killed. A test then acts on a run known to be mid-stage,
    however fast or slow the machine: no sleep has to be long enough."""
    return (
        "import os, threading, time\n"
        "from pathlib import Path\n"
        "from tmu_core import store\n"
        "_asked = store.Run.cancel_requested\n"
        "def _hold(self):\n"
        f"    if str(self.status().get('stage', '')).split(' ')[0] == {stage!r}:\n"
        f"        Path(os.environ['TMU_RUNS_DIR']).parent.joinpath('held-' + {stage!r}).write_text(str(os.getpid()))\n"
        f"        until = {str(until) if until else None!r}\n"
        "        if until is None:\n"
        "            threading.Event().wait()\n"
        "        while not Path(until).exists():\n"
        "            time.sleep(0.05)\n"
        "    return _asked(self)\n"
        "store.Run.cancel_requested = _hold\n"
    )


def start_cli(
    args: list[str], runs_dir: Path, cwd: Path = ROOT, offline: bool = False, prelude: str = ""
) -> subprocess.Popen:
    """`python -m tmu_core ARGS` in the background; `prelude` is Python run first (offline: no network)."""
    prelude = (NO_NETWORK if offline else "") + prelude
    if prelude:
        cmd = [
            sys.executable,
            "-c",
            prelude + "import sys\nfrom tmu_core.cli import main\nsys.exit(main(sys.argv[1:]))",
            *args,
        ]
    else:
        cmd = [sys.executable, "-m", "tmu_core", *args]
    return subprocess.Popen(
        cmd, cwd=cwd, env=cli_env(runs_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, exactly one line on stderr, no traceback, and the line names each of `needles`."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line
