"""Two identical runs started at the same moment both complete with separate results, and the models
they share (original, gold) are built once under the file lock: one run trains, the other waits and
loads the cached result."""

from __future__ import annotations

import json

from apptools import wait_for
from clitools import TINY_TRAIN, hold_in, start_cli

from tmu_core import store

ARGS = ["run", *TINY_TRAIN, "--epochs", "2", *["--methods", "finetune", "--finetune-epochs", "1"], "--json"]


def test_two_runs_at_once_share_models_built_once(runs_dir):
    """The first run to train the original is held inside that stage (clitools.hold_in) until both runs are
    running, so the second meets the model being built, not a finished one."""
    go = runs_dir.parent / "go"
    procs = [start_cli(ARGS, runs_dir, prelude=hold_in("original", until=go)) for _ in range(2)]

    def both_running_one_held():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a run ended early: {proc.stderr.read()[-2000:]}")
        running = [r for r in store.list_runs(runs_dir) if r.state == "running"]
        return (runs_dir.parent / "held-original").exists() and len(running) == 2

    wait_for(both_running_one_held, 180, "both runs to start while one trains the original")
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out))

    ids = [r["run_id"] for r in results]
    assert ids[0] != ids[1]
    for r in results:
        run = store.open_run(r["run_id"], runs_dir)
        assert run.status()["state"] == "complete"
        assert run.read_json("metrics.json")["run_id"] == r["run_id"]
        assert len(run.load_table()) == 20  # its own per-sample table: the 20 forgotten digits

    for kind in ("original", "gold"):
        flags = sorted(r["cache"][f"{kind}_cached"] for r in results)
        assert flags == [False, True], f"{kind}: trained by exactly one run, loaded by the other"
        assert results[0]["cache"][kind] == results[1]["cache"][kind]
        models = list((runs_dir / "_cache" / "models").glob(f"{kind}-*.pt"))
        assert len(models) == 1
        meta = json.loads(models[0].with_suffix(".json").read_text())
        assert meta["kind"] == kind and meta["n_train"] == (300 if kind == "original" else 280)
        store.load_state(models[0])
    # the same cached models give the same accuracies in both runs
    for name in ("original", "gold"):
        assert results[0]["models"][name]["acc_test"] == results[1]["models"][name]["acc_test"]
    assert [r.state for r in store.list_runs(runs_dir)] == ["complete", "complete"]
