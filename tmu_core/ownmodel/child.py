"""The sandboxed child of a run whose model is code (`python -m tmu_core _worker-sandbox ...`, started by
`sandbox.run_child`): it limits itself (`sandbox.enter`) before it reads the model, then

- `check FOLDER` (the run's config as JSON on stdin): loads and checks the model as a run's validation does and
  prints what it found as one JSON line; FOLDER (a private temporary folder) is the one it may write;
- `execute RUN [--progress]`: executes the stored run; the run's folder is the one it may write.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import sandbox

CHECK_CPU_SECONDS = 1800
RUN_CPU_SECONDS = 7 * 24 * 3600


def _gpu(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def _check(folder: str) -> int:
    from ..config import run_config_from_dict
    from .source import Own

    cfg = run_config_from_dict(json.loads(sys.stdin.read()))
    sandbox.enter(Path(folder), CHECK_CPU_SECONDS, _gpu(cfg.device))
    Own().check(cfg)
    original = Own().load(cfg).extra["original"]  # the run's data and request, its model loaded and checked
    found = {"batch_accuracy": original.batch_accuracy, "fit": original.fit, "notes": list(original.notes)}
    print(json.dumps(found))
    return 0


def _execute(run_id: str, progress: bool) -> int:
    from .. import store
    from ..jobs.pipeline import execute

    run = store.open_run(run_id)
    sandbox.enter(run.dir, RUN_CPU_SECONDS, _gpu(str(run.config().get("device", "auto"))))
    execute(run, progress=_progress if progress else None)
    return 0


def _progress(p) -> None:
    print(f"[{p.stage}] {100 * p.fraction:5.1f}% {p.message}", file=sys.stderr, flush=True)


def worker_main(argv: list[str]) -> int:
    from ..errors import TMUError

    if len(argv) >= 2 and argv[0] == "check":
        return _check(argv[1])
    if len(argv) >= 2 and argv[0] == "execute":
        return _execute(argv[1], "--progress" in argv[2:])
    raise TMUError("usage: _worker-sandbox check FOLDER | execute RUN [--progress]")
