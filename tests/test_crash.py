"""kill -9 at each stage of a run leaves the store consistent: the run reads as interrupted, no file a
reader trusts is half-written, and running it again completes, reusing the models already cached.

One run is killed three times (while training the original, the gold model, then a method) and then
completes; each kill is checked before the next start.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from apptools import wait_for
from clitools import TINY_TRAIN, hold_in, start_cli

from tmu_core import store

# Each kill comes while the run is held inside a stage (clitools.hold_in), so two epochs a stage are enough.
ARGS = ["run", *TINY_TRAIN, "--epochs", "2", "--methods", "finetune", "--finetune-epochs", "2", "--name", "crash"]


def _status(runs_dir: Path) -> tuple[str | None, dict]:
    dirs = [d for d in runs_dir.glob("crash-*") if (d / "status.json").exists()]
    if not dirs:
        return None, {}
    try:
        return dirs[0].name, json.loads((dirs[0] / "status.json").read_text())
    except json.JSONDecodeError:  # must never happen: status.json is replaced atomically
        pytest.fail("status.json was read half-written")


def _kill_when(proc, runs_dir: Path, stage: str, timeout: float = 180) -> str:
    """Wait until the run (started with `hold_in(stage)`) is held inside `stage`, then SIGKILL it; returns the
    run id."""
    held = runs_dir.parent / f"held-{stage}"

    def holding():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before stage {stage}: {proc.stderr.read()[-2000:]}")
        return held.exists()

    wait_for(holding, timeout, f"the run to reach stage {stage}")
    run_id, st = _status(runs_dir)
    assert st.get("state") == "running" and st.get("stage", "").split(" ")[0] == stage, st
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return run_id


def _check_consistent(runs_dir: Path, run_id: str, stage: str) -> None:
    run = store.open_run(run_id, runs_dir)
    st = run.status()
    assert st["state"] == "interrupted" and stage in st["error"], st
    assert [(r.run_id, r.state) for r in store.list_runs(runs_dir)] == [(run_id, "interrupted")]
    assert not run.exists("metrics.json"), "no results may appear for an unfinished run"
    for path in runs_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("."):  # dot-files are unfinished temporaries
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".pt":
                assert path.with_suffix(".json").exists(), f"{path.name} has no meta: it would be retrained"
                store.load_state(path)
    leftovers = [p.name for p in runs_dir.rglob(".*") if p.is_file()]
    assert all(n.endswith(".tmp") for n in leftovers), leftovers


def _cached(runs_dir: Path, kind: str) -> list[Path]:
    return sorted((runs_dir / "_cache" / "models").glob(f"{kind}-*.pt"))


def test_kill_at_each_stage_then_rerun_completes_with_cached_models(runs_dir):
    run_id = _kill_when(start_cli(ARGS, runs_dir, prelude=hold_in("original")), runs_dir, "original")
    _check_consistent(runs_dir, run_id, "original")
    assert _cached(runs_dir, "original") == [], "a half-trained original must not be cached"

    run_id2 = _kill_when(start_cli(["execute", run_id], runs_dir, prelude=hold_in("gold")), runs_dir, "gold")
    assert run_id2 == run_id
    _check_consistent(runs_dir, run_id, "gold")
    assert len(_cached(runs_dir, "original")) == 1 and _cached(runs_dir, "gold") == []
    original_bytes = _cached(runs_dir, "original")[0].read_bytes()

    _kill_when(start_cli(["execute", run_id], runs_dir, prelude=hold_in("finetune")), runs_dir, "finetune")
    _check_consistent(runs_dir, run_id, "finetune")
    assert len(_cached(runs_dir, "gold")) == 1

    final = start_cli(["execute", run_id], runs_dir)
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err[-2000:]
    run = store.open_run(run_id, runs_dir)
    assert run.status()["state"] == "complete"
    metrics = run.read_json("metrics.json")
    assert metrics["cache"]["original_cached"] and metrics["cache"]["gold_cached"]
    assert run.status()["stages"]["original"]["state"] == "cached"
    assert _cached(runs_dir, "original")[0].read_bytes() == original_bytes, "the cached original was not rebuilt"
    assert set(metrics["models"]) == {"original", "gold", "finetune"}
    assert [(r.run_id, r.state) for r in store.list_runs(runs_dir)] == [(run_id, "complete")]
