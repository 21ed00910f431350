"""The evaluation protocol's statistics on hand-computed cases: the t interval, the paired test, the gold
ensemble's agreement, ceiling and soft scores, and the sweep tables' summary blocks."""
import math

import numpy as np
import pandas as pd
import pytest

from tmu_core.evaluate import ensemble as E
from tmu_core.evaluate import metrics as M
from tmu_core.evaluate import protocol as P
from tmu_core.evaluate.paper_tables import tables


def test_mean_ci_is_the_student_t_interval():
    # 1..5: mean 3, s = sqrt(2.5), t(0.975, df 4) = 2.776445 (tables), half = t s / sqrt(5)
    mean, half, n = P.mean_ci([1, 2, 3, 4, 5])
    assert (mean, n) == (3.0, 5)
    assert half == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)  # 1.963243


def test_mean_ci_leaves_out_nan_and_has_no_width_for_one_value():
    assert P.mean_ci([2.0, float("nan")])[0] == 2.0 and math.isnan(P.mean_ci([2.0])[1])
    assert P.mean_ci([])[2] == 0


def test_paired_test_on_a_constructed_case():
    # differences 2, 3, 4, 2: mean 2.75, s = sqrt(2.75 / 3), t = 2.75 / (s / 2) = 5.7446; df 3 -> p just above
    # 0.01 (the two-sided 1% point of t with 3 df is 5.841)
    res = P.paired_test([3, 5, 7, 4], [1, 2, 3, 2])
    s = math.sqrt(2.75 / 3)
    assert res["n"] == 4 and res["diff"] == pytest.approx(2.75)
    assert res["t"] == pytest.approx(2.75 / (s / 2), rel=1e-9)
    assert 0.01 < res["p"] < 0.012
    half = 3.182446 * s / 2  # t(0.975, df 3) = 3.182446
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((2.75 - half, 2.75 + half), rel=1e-6)


def test_paired_test_without_spread_has_no_p():
    res = P.paired_test([2, 3], [1, 2])
    assert res["diff"] == 1.0 and math.isnan(res["p"])
    # the same difference up to float32 rounding (two runs of a results file: 4.0 - 12.0 twice) has no p either
    res = P.paired_test([3.9999961853027344, 4.000004291534424], [12.0, 12.000000715255737])
    assert res["diff"] == pytest.approx(-8.0) and math.isnan(res["p"]) and math.isnan(res["t"])
    res = P.paired_test([96.99999809265137, 97.00000405311584], [97.0, 97.0])  # a zero difference, in noise
    assert math.isnan(res["p"])


CORRECT = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]])  # 3 golds x 4 samples


def test_gold_ensemble_agreement_and_ceiling():
    p = E.p_right(CORRECT)
    assert p == pytest.approx([1, 2 / 3, 1 / 3, 0])
    # pairs (0,1): 2 of 4 agree; (0,2): 4 of 4; (1,2): 2 of 4 -> 2/3
    assert E.pairwise_agreement(CORRECT) == pytest.approx(100 * 2 / 3)
    # max(p, 1 - p) = 1, 2/3, 2/3, 1 -> 5/6: above gold-vs-gold agreement
    assert E.ceiling(p) == pytest.approx(100 * 5 / 6)


def test_soft_label_accuracy_is_the_expected_agreement_with_a_fresh_gold():
    p = np.array([1, 2 / 3, 1 / 3, 0])
    assert E.soft_label_accuracy([1, 1, 0, 0], p) == pytest.approx(100 * 5 / 6)  # the majority reaches the ceiling
    assert E.soft_label_accuracy([1, 0, 1, 0], p) == pytest.approx(100 * (1 + 1 / 3 + 1 / 3 + 1) / 4)


def test_soft_auc_weights_pairs_by_p_and_one_minus_p():
    p = np.array([1, 2 / 3, 1 / 3, 0])
    # easy weights p, hard weights q = 1 - p over pairs i != j: total 2 * 2 - sum(p q) = 32/9; only the pair
    # (i = 2 as easy, j = 1 as hard, weight 1/3 * 1/3) is ranked the wrong way -> 31/32
    assert E.soft_auc([0.9, 0.6, 0.4, 0.1], p) == pytest.approx(100 * 31 / 32)
    assert E.soft_auc([0.5] * 4, p) == pytest.approx(50.0)
    assert math.isnan(E.soft_auc([0.1, 0.2], [1.0, 1.0]))


def test_soft_auc_with_hard_truth_is_the_ordinary_auc():
    rng = np.random.default_rng(0)
    score, truth = rng.random(40), rng.random(40) < 0.6
    score[:5] = 0.5  # ties
    assert E.soft_auc(score, truth.astype(float)) == pytest.approx(M.roc_auc(score, truth))


def test_sample_agreement_counts_both_right_or_both_wrong():
    # label 8: model right, right, wrong, wrong; gold right, wrong, wrong (other class), right
    assert M.sample_agreement([8, 8, 1, 2], [8, 3, 5, 8], [8, 8, 8, 8]) == 50.0


def fake_result(cls: int, seed: int, n: int, tmu: float, ft: float) -> dict:
    def model(delta):
        return {"acc_test": 90.0, "acc_forget": 80.0 + delta, "abs_delta": delta, "activation_distance": 0.1,
                "mia": 50.0, "sample_agreement": 100.0 - delta}
    return {"forget_class": cls, "forget_class_name": str(cls), "seed": seed, "forget_count": n,
            "models": {"original": model(20.0), "gold": model(0.0), "tmu": model(tmu), "finetune": model(ft)}}


def test_tables_summarise_tuning_and_held_out_classes_apart():
    results = [fake_result(c, s, 100, tmu=1.0 + c + s, ft=5.0 + c) for s in (0, 1) for c in (3, 5)]
    t1 = tables(results, tuning_classes=[3])["table1"]
    labels = list(t1["class"])
    assert labels[-4:] == ["Avg (held-out)", "95% CI ± (held-out)", "Avg (tuning)", "95% CI ± (tuning)"]
    by = t1.set_index("class")
    assert by.loc["Avg (held-out)", "TMU |Δ|"] == pytest.approx(6.5)  # class 5: 6 and 7
    assert by.loc["Avg (tuning)", "TMU |Δ|"] == pytest.approx(4.5)  # class 3: 4 and 5
    assert by.loc["95% CI ± (tuning)", "TMU |Δ|"] == pytest.approx(12.706205 * math.sqrt(0.5) / math.sqrt(2), rel=1e-6)


def test_tables_pair_the_primary_method_with_the_others_and_draw_the_curve():
    results = [fake_result(c, 0, n, tmu=1.0 + c, ft=2.0 + 2 * c) for n in (100, 500) for c in (1, 2, 3)]
    frames = tables(results)
    paired = frames["paired"].iloc[0]
    # FT - TMU differences 1 + c over both sizes: 2, 3, 4, 2, 3, 4 -> TMU - FT = -3 on average
    assert paired["method"] == "FT" and paired["n"] == 6 and paired["mean diff"] == pytest.approx(-3.0)
    assert paired["p"] < 0.01
    curve = frames["curve"]
    assert list(curve["|D_f|"].unique()) == [100, 500]
    row = curve[(curve["|D_f|"] == 500) & (curve["method"] == "TMU")].iloc[0]
    assert row["|Δ|"] == pytest.approx(3.0) and row["agreement"] == pytest.approx(97.0) and row["runs"] == 3
    assert "1 n100" in set(frames["table1"]["class"])


def test_with_summary_without_groups_adds_one_avg_and_one_ci_row():
    df = P.with_summary(pd.DataFrame({"class": ["a", "b"], "x": [1.0, 3.0]}))
    assert list(df["class"]) == ["a", "b", "Avg", "95% CI ±"] and df["x"].iloc[2] == 2.0


def test_export_adds_another_sweeps_matching_runs_and_rebuilds_the_tables(tmp_path, monkeypatch):
    """benchmarks/export_sweep.py --add: runs already made by another sweep join the tables instead of being
    computed again; --add-where keeps only the matching ones, and a K = 3 run joins a K = 1 sweep as K = 1."""
    import importlib.util
    from pathlib import Path

    from tmu_core import store

    monkeypatch.setenv("TMU_RUNS_DIR", str(tmp_path / "runs"))
    spec = importlib.util.spec_from_file_location(
        "export_sweep", Path(__file__).resolve().parents[1] / "benchmarks" / "export_sweep.py")
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    monkeypatch.setattr(export, "RESULTS", tmp_path / "results")
    extra = {"dataset": "digits", "model": "small_cnn", "device": "cpu", "cost_ratio": 0.2}
    own = [{**fake_result(c, 0, 100, tmu=1.0, ft=5.0), **extra} for c in (0, 2)]
    other = [{**fake_result(c, s, 100, tmu=3.0, ft=7.0), **extra, "gold_ensemble": {"k": 3}} for s in (0, 1)
             for c in (3, 8)]
    store.Sweep("own").save_results({"sweep_id": "own", "results": own, "failed": [], "tuning_classes": [3],
                                     "gold_seeds": 1})
    store.Sweep("other").save_results({"sweep_id": "other", "results": other, "failed": [], "gold_seeds": 3})
    assert export.main(["--sweep-id", "own", "--add", "other", "--add-where", "seed=0", "--name", "all",
                        "--command", "x"]) == 0
    t1 = pd.read_csv(tmp_path / "results" / "all-table1.csv").set_index("class")
    assert {"0", "2", "3", "8"} <= set(t1.index)  # seed 1 of the other sweep left out
    assert t1.loc["Avg (held-out)", "TMU |Δ|"] == pytest.approx(5 / 3)  # classes 0, 2, 8: 1, 1, 3 (3 is tuning)
    assert t1.loc["Avg (tuning)", "TMU |Δ|"] == pytest.approx(3.0)
    assert not (tmp_path / "results" / "all-ensemble.csv").exists()  # added K = 3 runs count as K = 1 here
    cost = pd.read_csv(tmp_path / "results" / "all-cost.csv").set_index("class")
    assert cost.loc["Avg (tuning)", "cost ratio"] == pytest.approx(0.2)  # every fake run's ratio
    md = (tmp_path / "results" / "all.md").read_text()
    assert "2 runs added from sweep `other` (seed=[0])" in md and "held-out classes: 0, 2, 8" in md
    with pytest.raises(SystemExit, match="--add-where takes"):
        export.main(["--sweep-id", "own", "--add", "other", "--add-where", "colour=1", "--name", "x", "--command", "x"])
    store.Sweep("empty").save_results({"sweep_id": "empty", "results": [], "failed": [], "gold_seeds": 1})
    with pytest.raises(SystemExit, match="no completed run"):
        export.main(["--sweep-id", "empty", "--name", "x", "--command", "x"])


def test_audit_variants_keeps_reused_rows_instead_of_running_them_again(tmp_path, monkeypatch):
    """benchmarks/audit_variants.py --reuse: a (variant, class, seed) found in an earlier CSV is taken from it and
    the pipeline is not started for it; a file that is not such a CSV is one clear error."""
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))  # as when run as a script: its sibling alignment.py is importable
    spec = importlib.util.spec_from_file_location("audit_variants", folder / "audit_variants.py")
    av = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(av)
    rows = [{"variant": "paper", "class": c, "seed": 0, **{col: float(c) for col in av.COLUMNS}} for c in (3, 8)]
    pd.DataFrame(rows).to_csv(tmp_path / "old.csv", index=False)
    done = av.reused_rows([tmp_path / "old.csv"])
    assert set(done) == {("paper", 3, 0), ("paper", 8, 0)}

    def no_run(*_a, **_k):
        raise AssertionError("a reused row must not run the pipeline")

    av.execute, av.start = no_run, no_run
    from tmu_core.config import RunConfig
    logged = []
    out = av.run_variant(RunConfig(), "paper", {}, [3, 8], [0], logged.append, done)
    assert [r["TMU |Δ|"] for r in out] == [3.0, 8.0] and all("reused" in m for m in logged)
    with pytest.raises(AssertionError):  # seed 1 is not in the file: it would run
        av.run_variant(RunConfig(), "paper", {}, [3], [1], logged.append, done)
    pd.DataFrame([{"a": 1}]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SystemExit, match="not an audit_variants CSV"):
        av.reused_rows([tmp_path / "bad.csv"])
