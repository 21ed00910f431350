"""Determinism: the same config and seed on CPU gives identical metrics, per-sample table and embeddings
twice (timings aside), every method included. The runs forget 25 of class 8's 30 training digits, too
many for Eq. 3 to be met from the aux pool, so they also show the fallback being recorded in the run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tmu_core import store
from tmu_core.config import DataConfig, ForgetSpec, RunConfig, TrainConfig
from tmu_core.jobs.pipeline import execute, start
from tmu_core.methods import METHODS

ONE_EPOCH = (("epochs", 1),)
CONFIG = RunConfig(
    data=DataConfig(train_per_class=30),
    forget=ForgetSpec(forget_class="8", forget_count=25),
    train=TrainConfig(epochs=3, batch_size=32),
    methods=tuple(METHODS.names()),
    device="cpu",
    seed=1,
    method_params=tuple((m, ONE_EPOCH) for m in METHODS.names() if m != "tmu")
    + (
        (
            "tmu",
            (
                ("aux_max_factor", 4.0),
                ("aux_scale", 1.0),
                ("cf_epochs", 1),
                ("clf_epochs", 10),
                ("epochs", 1),
                ("twin_epochs", 1),
            ),
        ),
    ),
)
# what depends on timing or on the run's own folder (the files' paths), not on the science
TIMINGS = {"run_id", "seconds", "cost_ratio", "cost_ratio_counts", "stage_seconds", "unlearned_weights", "audit_csv"}


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMINGS and not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same run twice, each in its own empty store (nothing cached), in this process."""
    out = []
    for i in range(2):
        root = tmp_path_factory.mktemp(f"store{i}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TMU_RUNS_DIR", str(root))
            run = start(CONFIG)
            result = execute(run)
            out.append((store.open_run(run.id, root), result))
    return out


def test_same_config_and_seed_give_identical_results(two_runs):
    (run_a, res_a), (run_b, res_b) = two_runs
    assert not res_a["cache"]["original_cached"] and not res_b["cache"]["original_cached"], "both trained afresh"
    assert _without_timings(run_a.read_json("metrics.json")) == _without_timings(run_b.read_json("metrics.json"))
    pd.testing.assert_frame_equal(run_a.load_table(), run_b.load_table())
    emb_a, emb_b = run_a.load_arrays(), run_b.load_arrays()
    assert emb_a.keys() == emb_b.keys()
    for key in emb_a:
        assert np.array_equal(emb_a[key], emb_b[key]), key
    a, b = run_a.load_weights("tmu"), run_b.load_weights("tmu")
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_results_are_complete_and_in_range(two_runs):
    run, res = two_runs[0]
    assert set(res["models"]) == {"original", "gold", *METHODS.names()}
    for name, m in res["models"].items():
        for key in ("acc_test", "acc_remain", "acc_forget"):
            assert 0.0 <= m[key] <= 100.0, (name, key)
    assert run.status()["state"] == "complete"


def test_gold_accuracy_and_truth_match_the_cached_gold_model(two_runs, monkeypatch):
    """Gold's A_f and D_f's easy/hard truth, recomputed from the cached gold model's own predictions on D_f (an
    independent path: the model file, not the pipeline's evaluation)."""
    import torch

    from tmu_core.data import load_dataset, resolve_forget
    from tmu_core.references import new_model
    from tmu_core.train import predict

    run, res = two_runs[0]
    monkeypatch.setenv("TMU_RUNS_DIR", str(run.dir.parent))
    data = load_dataset(CONFIG.data, CONFIG.seed)
    forget = resolve_forget(data, CONFIG.forget, CONFIG.seed)
    gold = new_model(data, CONFIG.train)
    gold.load_state_dict(store.load_state(store.model_cache_file(res["cache"]["gold"])))
    right = predict(gold, data.x[torch.as_tensor(forget.ids)], torch.device("cpu")).argmax(1).numpy() == 8
    assert res["models"]["gold"]["acc_forget"] == pytest.approx(100 * right.mean())
    rows = run.samples().query("role == 'forget'").set_index("id").loc[forget.ids]
    assert list(rows.true_label) == ["easy" if r else "hard" for r in right]


def test_the_capped_aux_set_is_recorded_in_the_run(two_runs):
    """|D_f| = 25, |D_r^c| = 5: Eq. 3 asks 25 * 30 / 5 = 150; the pool holds 14 (10% of 139 eights), the 4x
    cap allows 56: the run records requested / available / augmented / used."""
    run, _ = two_runs[0]
    sizing = run.read_json("metrics.json")["tmu"]["aux_sizing"]
    assert {k: sizing[k] for k in ("requested", "available", "augmented", "used", "capped")} == {
        "requested": 150,
        "available": 14,
        "augmented": 42,
        "used": 56,
        "capped": True,
    }
    table = run.load_table()
    aux = table[table["role"] == "aux"]
    assert len(aux) == 56 and int(aux["augmented"].sum()) == 42
