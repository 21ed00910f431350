"""The run store: every artifact round-trips, writes are atomic, status reflects dead processes, configs
survive JSON, and the listing shows damaged runs without hiding the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from clitools import default_config

from tmu_core import store
from tmu_core.config import DataConfig, ForgetSpec, RunConfig, TrainConfig, run_config_from_dict, run_config_to_dict
from tmu_core.errors import TMUError

CONFIG = RunConfig(
    data=DataConfig(train_per_class=30),
    forget=ForgetSpec(forget_class="3", forget_ids=(5, 9)),
    train=TrainConfig(epochs=2),
    methods=("tmu", "finetune"),
    method_params=(("tmu", (("nf_k", 3), ("pgd_eps", 0.1))),),
    seed=4,
    device="cpu",
    name="x",
)


def test_run_config_survives_json():
    d = json.loads(json.dumps(run_config_to_dict(CONFIG)))
    assert d["forget"]["forget_ids"] == [5, 9] and d["method_params"] == {"tmu": {"nf_k": 3, "pgd_eps": 0.1}}
    back = run_config_from_dict(d)
    assert back == CONFIG and back.params_for("tmu") == {"nf_k": 3, "pgd_eps": 0.1}


def test_run_config_from_json_coerces_numbers_to_the_field_types():
    d = run_config_to_dict(CONFIG)
    d["train"]["lr"] = 1  # JSON writers drop ".0"
    d["train"]["epochs"] = 2.0
    cfg = run_config_from_dict(d)
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0
    assert isinstance(cfg.train.epochs, int) and cfg.train.epochs == 2


def test_numpy_values_from_widgets_become_plain_python():
    from tmu_core.methods import method_config

    cfg = method_config(
        "tmu", "digits", {"nf_normalize": np.False_, "pgd_steps": np.int64(3), "twin_lr": np.float32(0.5)}
    )
    f, twin = cfg.scoring, cfg.twin
    assert (type(f.nf_normalize), type(f.pgd_steps), type(twin.twin_lr)) == (bool, int, float)
    assert json.loads(json.dumps({"v": f.pgd_steps})) == {"v": 3}


def test_every_artifact_round_trips(runs_dir):
    run = store.Run.create("demo", run_config_to_dict(CONFIG))
    assert run.dir.parent == runs_dir and run.id.startswith("demo-")
    assert run.read_json("config.json") == run_config_to_dict(CONFIG)
    assert run.status()["state"] == "queued"
    run.write_json("metrics.json", {"a": np.float32(0.5), "b": np.arange(3), "n": np.int64(7)})
    assert run.read_json("metrics.json") == {"a": 0.5, "b": [0, 1, 2], "n": 7}
    state = {"w": torch.randn(3, 4), "n": torch.tensor(2)}
    run.save_weights("tmu", state)
    back = run.load_weights("tmu")
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    df = pd.DataFrame({"id": [1, 2], "role": ["forget", "aux"], "p": [0.25, 0.75]})
    run.save_table(df)
    pd.testing.assert_frame_equal(run.load_table(), df)
    run.save_arrays("embeddings.npz", emb=np.eye(3, dtype=np.float32), role=np.array(["a", "b", "c"]))
    arrays = run.load_arrays()
    assert np.array_equal(arrays["emb"], np.eye(3)) and arrays["role"].tolist() == ["a", "b", "c"]
    assert store.open_run(run.id).dir == run.dir


def test_set_status_merges_and_stamps(runs_dir):
    run = store.Run.create("s", default_config())
    run.set_status(state="running", stage="gold", progress=0.5, pid=os.getpid())
    st = run.set_status(progress=0.75)
    assert st["stage"] == "gold" and st["progress"] == 0.75 and st["updated"]
    assert run.status()["state"] == "running"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(runs_dir):
    run = store.Run.create("atomic", {"v": 1})
    with pytest.raises(TypeError):
        run.write_json("config.json", {"v": object()})  # not serialisable: fails before anything is replaced
    assert run.read_json("config.json") == {"v": 1}
    assert [p.name for p in run.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_a_running_run_whose_process_died_reads_as_interrupted(runs_dir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = store.Run.create("dead", default_config())
    run.set_status(state="running", stage="original", progress=0.2, pid=dead.pid)
    st = run.status()
    assert st["state"] == "interrupted" and "original" in st["error"]
    assert [r.state for r in store.list_runs()] == ["interrupted"]


def test_a_reused_process_id_does_not_keep_a_dead_run_running(runs_dir):
    run = store.Run.create("reused", default_config())
    run.set_status(state="running", stage="gold", pid=os.getpid())  # this process: alive, start time recorded
    assert run.status()["state"] == "running"
    st = run.read_json("status.json")
    if st["pid_start"] is None:
        pytest.skip("no /proc here: process start times are unknown")
    run.write_json("status.json", {**st, "pid_start": st["pid_start"] - 1})  # same id, another process
    assert run.status()["state"] == "interrupted"


def test_listing_is_newest_first_and_flags_damage_without_hiding_others(runs_dir, finished_run):
    import shutil

    def copy(name: str) -> store.Run:
        shutil.copytree(finished_run[0] / finished_run[1], runs_dir / f"{name}-0")
        return store.open_run(f"{name}-0")

    good = copy("agood")
    (good.dir / "status.json").write_text(
        (good.dir / "status.json").read_text().replace(good.status()["updated"], "2999-01-01T00:00:00")
    )  # newer than the others
    bad_metrics = copy("badmetrics")
    (bad_metrics.dir / "metrics.json").write_text('{"truncated": ')
    bad_weights = copy("badweights")
    bad_weights.weights_path("tmu").write_bytes(b"\x00" * 64)
    bad_status = store.Run.create("badstatus", {"a": 1})
    (bad_status.dir / "status.json").write_text("[1, 2]")
    (runs_dir / "_cache").mkdir(exist_ok=True)  # not a run
    listed = {r.run_id.split("-")[0]: r for r in store.list_runs()}
    assert set(listed) == {"agood", "badmetrics", "badweights", "badstatus"}
    assert listed["agood"].state == "complete" and listed["agood"].config["data"]["dataset"] == "digits"
    assert listed["badmetrics"].state == "damaged" and "metrics.json" in listed["badmetrics"].error
    assert listed["badweights"].state == "damaged" and "tmu.pt" in listed["badweights"].error
    assert listed["badstatus"].state == "damaged"
    assert store.list_runs()[0].run_id == good.id


def test_list_of_a_missing_store_is_empty(tmp_path):
    assert store.list_runs(tmp_path / "nowhere") == []


def test_run_ids_are_unique_and_readable(runs_dir):
    ids = {store.Run.create("same name", default_config()).id for _ in range(5)}
    assert len(ids) == 5 and all(i.startswith("same-name-") for i in ids)


def test_missing_files_are_user_errors(runs_dir):
    run = store.Run.create("m", default_config())
    for call in (
        lambda: run.read_json("metrics.json"),
        lambda: run.load_weights("tmu"),
        run.load_table,
        run.load_arrays,
        lambda: store.open_run("no-such-run"),
    ):
        with pytest.raises(TMUError):
            call()
