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

pytestmark = pytest.mark.fast  # `make test-fast`


def benchmark(name: str, monkeypatch):
    """A script of benchmarks/ loaded as a module, its folder on sys.path as when it runs (it imports common.py)."""
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    # leave one gold out: samples 0 and 3 (all agree) score 1; on samples 1 and 2 the gold in the minority is
    # predicted wrong (0) and each of the other two faces a split majority (1/2): 1/3 -> (1 + 1/3 + 1/3 + 1) / 4
    assert E.ceiling_loo(CORRECT) == pytest.approx(100 * 2 / 3)
    assert E.ceiling_loo(CORRECT[:2]) == pytest.approx(E.pairwise_agreement(CORRECT[:2]))  # K = 2: agreement
    assert math.isnan(E.ceiling_loo(CORRECT[:1]))


def test_leave_one_gold_out_ceiling_has_no_small_k_bias():
    # every sample's true p is 0.5: no predictor beats 50; the plug-in ceiling of K = 3 golds reads 75
    correct = np.random.default_rng(0).random((3, 20000)) < 0.5
    assert E.ceiling(E.p_right(correct)) == pytest.approx(75.0, abs=1.0)
    assert E.ceiling_loo(correct) == pytest.approx(50.0, abs=1.0)
    assert E.summary(correct, [50.0] * 3, [0, 1, 2])["ceiling_loo"] == pytest.approx(E.ceiling_loo(correct))


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
        return {
            "acc_test": 90.0,
            "acc_forget": 80.0 + delta,
            "abs_delta": delta,
            "activation_distance": 0.1,
            "mia": 50.0,
            "sample_agreement": 100.0 - delta,
        }

    return {
        "forget_class": cls,
        "forget_class_name": str(cls),
        "seed": seed,
        "forget_count": n,
        "models": {"original": model(20.0), "gold": model(0.0), "tmu": model(tmu), "finetune": model(ft)},
    }


def test_tables_summarise_tuning_and_held_out_classes_apart_with_the_class_as_the_unit():
    results = [fake_result(c, s, 100, tmu=1.0 + c + s, ft=5.0 + c) for s in (0, 1) for c in (3, 4, 5)]
    t1 = tables(results, tuning_classes=[3])["table1"]
    labels = list(t1["class"])
    assert labels[-4:] == [
        "Avg (held-out: 2 classes, 4 runs)",
        "95% CI ± (held-out: 2 classes, 4 runs)",
        "Avg (tuning: 1 class, 2 runs)",
        "95% CI ± (tuning: 1 class, 2 runs)",
    ]
    by = t1.set_index("class")
    assert by.loc["Avg (held-out: 2 classes, 4 runs)", "TMU |Δ|"] == pytest.approx(6.0)  # class 4: 5, 6; 5: 6, 7
    # two class means 5.5 and 6.5 (not four runs): t(0.975, df 1) = 12.706205, s = sqrt(0.5), k = 2
    assert by.loc["95% CI ± (held-out: 2 classes, 4 runs)", "TMU |Δ|"] == pytest.approx(
        12.706205 * math.sqrt(0.5) / math.sqrt(2), rel=1e-6
    )
    assert by.loc["Avg (tuning: 1 class, 2 runs)", "TMU |Δ|"] == pytest.approx(4.5)  # class 3: 4 and 5
    assert math.isnan(by.loc["95% CI ± (tuning: 1 class, 2 runs)", "TMU |Δ|"])  # one class: no interval
    assert by.loc["Avg (held-out: 2 classes, 4 runs)", "Orig |Δ|"] == 20.0  # the original is a row


def test_class_level_interval_on_a_toy_table_counts_classes_runs_and_left_out_values():
    # class a: 1, 3 (mean 2); class b: 10; class c: nan, 6 (mean 6, one value left out) -> means 2, 10, 6
    df = pd.DataFrame({"class": ["a0", "a1", "b0", "c0", "c1"], "x": [1.0, 3.0, 10.0, float("nan"), 6.0]})
    out = P.with_summary(df, units=["a", "a", "b", "c", "c"]).set_index("class")
    assert out.loc["Avg (3 classes, 5 runs)", "x"] == pytest.approx(6.0)  # not the run mean 5.0
    # s of (2, 10, 6) = 4; t(0.975, df 2) = 4.302653
    assert out.loc["95% CI ± (3 classes, 5 runs)", "x"] == pytest.approx(4.302653 * 4 / math.sqrt(3), rel=1e-6)
    assert out.loc["non-finite left out", "x"] == 1
    assert P.is_summary("non-finite left out (held-out)")
    ci = P.class_ci([1.0, 3.0, 10.0, float("nan"), 6.0], ["a", "a", "b", "c", "c"])
    assert (ci["classes"], ci["runs"], ci["left_out"]) == (3, 4, 1)


def test_holm_on_a_known_vector():
    # sorted 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> kept monotone at 0.06
    assert P.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = P.holm([0.02, float("nan"), 0.04])  # a missing p is not part of the family: m = 2
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert P.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_sign_test_exact_p():
    # 5 closer, 1 farther, 1 tie (left out): n = 6, P(X <= 1) = (1 + 6) / 64, two-sided 14/64
    res = P.sign_test([-1, -2, -3, -4, -5, 1, 0])
    assert (res["below"], res["above"]) == (5, 1) and res["p"] == pytest.approx(14 / 64)
    assert P.sign_test([-1] * 8)["p"] == pytest.approx(2 / 256)
    assert math.isnan(P.sign_test([1e-6, -1e-6, 0.0])["p"])  # float noise is a tie: nothing left to test


def test_tables_pair_the_primary_method_with_the_others_by_class_and_draw_the_curve():
    results = [fake_result(c, 0, n, tmu=1.0 + c, ft=2.0 + 2 * c) for n in (100, 500) for c in (1, 2, 3)]
    frames = tables(results)
    assert list(frames["paired"]["method"]) == ["Orig", "FT"]  # doing nothing is the first comparison
    paired = frames["paired"].iloc[1]
    # FT - TMU = 1 + c in both sizes: the class means of TMU - FT are -2, -3, -4 (3 classes, not 6 runs):
    # t = -3 / (1 / sqrt 3) = -5.196 with 2 df -> p = 0.0351; all 3 closer: sign p = 2 / 8
    assert paired["method"] == "FT" and (paired["classes"], paired["runs"]) == (3, 6)
    assert paired["mean diff"] == pytest.approx(-3.0) and paired["t"] == pytest.approx(-3 * math.sqrt(3))
    assert 0.035 < paired["p"] < 0.0352 and paired["sign p"] == pytest.approx(0.25)
    assert paired["closer / farther"] == "3/0"
    # the family is {original, FT}: TMU - original = c - 19 per class, so its p is tiny and FT's p is the larger
    assert paired["p Holm"] == pytest.approx(max(paired["p"], 2 * frames["paired"].iloc[0]["p"]))
    curve = frames["curve"]
    assert list(curve["|D_f|"].unique()) == [100, 500]
    row = curve[(curve["|D_f|"] == 500) & (curve["method"] == "TMU")].iloc[0]
    assert row["|Δ|"] == pytest.approx(3.0) and row["agreement"] == pytest.approx(97.0) and row["runs"] == 3
    assert row["classes"] == 3
    assert "1 n100" in set(frames["table1"]["class"])


def test_paired_p_values_are_holm_corrected_over_the_groups_comparisons():
    results = [fake_result(c, 0, 100, tmu=1.0, ft=2.0 + c) for c in range(4)]
    for r in results:  # a second comparison: NG, farther from gold still
        r["models"]["neggrad"] = {**r["models"]["finetune"], "abs_delta": 5.0 + 2 * r["forget_class"]}
    paired = tables(results)["paired"].set_index("method")
    p_ft, p_ng = paired.loc["FT", "p"], paired.loc["NG", "p"]
    # TMU 1 against the original's 20 in every class: the same difference everywhere has no t-test p, and is
    # left out of the t-test family (m = 2)
    assert math.isnan(paired.loc["Orig", "p"]) and math.isnan(paired.loc["Orig", "p Holm"])
    lo, hi = sorted([p_ft, p_ng])
    assert sorted(paired.loc[["FT", "NG"], "p Holm"]) == pytest.approx(sorted([2 * lo, max(2 * lo, hi)]))
    # sign test: 4 of 4 classes closer in all three, 0.125 each: Holm 3 x 0.125, then monotone
    assert list(paired["sign p Holm"]) == pytest.approx([0.375, 0.375, 0.375])


def test_wilcoxon_exact_on_hand_computed_cases():
    # 8 differences of one sign: W+ = 0 of 36, P = 2 / 2^8 (the smallest any exact test gives with 8 classes)
    res = P.wilcoxon_exact([-1, -2, -3, -4, -5, -6, -7, -8])
    assert (res["n"], res["w_plus"]) == (8, 0.0) and res["p"] == pytest.approx(2 / 256)
    # n = 3, ranks 1, 2, 3 with one positive (rank 1): W+ = 1; W+ in {0, 1} or {5, 6} in 4 of 8 patterns
    res = P.wilcoxon_exact([0.5, -2.0, -3.0, 0.0])  # the zero is left out
    assert (res["n"], res["w_plus"]) == (3, 1.0) and res["p"] == pytest.approx(4 / 8)
    # ties share their mid-rank: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3; W+ = 1.5 of 6: patterns with W+ <= 1.5 or
    # >= 4.5 are {}, {a}, {b}, {a, b, c}, {a, c}, {b, c}, i.e. 6 of 8
    res = P.wilcoxon_exact([1.0, -1.0, -2.0])
    assert res["w_plus"] == 1.5 and res["p"] == pytest.approx(6 / 8)
    # the held-out CIFAR round-3 differences TMU - FT per class (README: Wilcoxon 0.039)
    ft = [-8.33, -12.67, -2.0, -6.67, 0.33, 1.0, -8.0, -6.33]
    assert P.wilcoxon_exact(ft)["p"] == pytest.approx(10 / 256)  # W+ = 3: W+ <= 3 in 5 of 256, doubled
    assert P.smallest_exact_p(8) == pytest.approx(0.0078125) and math.isnan(P.smallest_exact_p(0))


def test_detectable_difference_at_80_percent_power():
    from scipy import stats

    # n = 8, SD of the differences 4.72 (TMU - FT, held-out CIFAR): 5.46; the shortcut (t_.975 + t_.8) s / sqrt(n)
    # gives (2.365 + 0.896) * 4.72 / 2.828 = 5.44
    d = P.detectable_difference(4.72, 8)
    assert d == pytest.approx(5.46, abs=0.01)
    nc = d / 4.72 * math.sqrt(8)  # at that difference the two-sided 5% test rejects with probability 0.8
    crit = stats.t.ppf(0.975, 7)
    assert stats.nct.sf(crit, 7, nc) + stats.nct.cdf(-crit, 7, nc) == pytest.approx(0.8, abs=1e-6)
    assert P.detectable_difference(4.72 * 2, 8) == pytest.approx(2 * d)  # linear in the spread
    assert math.isnan(P.detectable_difference(1.0, 1)) and math.isnan(P.detectable_difference(0.0, 8))


def test_significant_needs_the_exact_test_or_says_why_it_cannot():
    assert P.significance(0.001, 0.02, 10, 6) == "yes"
    # 8 classes, 9 comparisons: 9 * 2 / 256 = 0.070; 7 comparisons: 0.055 -- no exact test can reach 0.05
    assert P.significance(0.045, 0.07, 8, 9) == (
        "t-test only; no exact test can: 8 classes, 9 comparisons, smallest exact Holm p 0.070"
    )
    assert P.significance(0.3, 0.5, 8, 7).startswith(
        "no; no exact test can: 8 classes, 7 comparisons, smallest exact Holm p 0.055"
    )
    # 10 classes, 6 comparisons: 6 * 2 / 1024 = 0.012 could pass, so a t-test alone is not enough
    assert P.significance(0.01, 0.2, 10, 6) == "no: the exact test does not agree (Wilcoxon Holm p 0.200)"
    assert P.significance(0.2, 0.01, 10, 6) == "no"
    # ties leave the exact test fewer differences than classes: 3 of 10 differ, 2 / 8 * 7 > 1
    assert P.significance(0.2, 0.75, 3, 7, 10).endswith(
        "3 of 10 classes differ, 7 comparisons, smallest exact Holm p 1.000"
    )


def test_controls_stay_out_of_the_holm_family_and_every_row_has_its_detectable_difference():
    results = [fake_result(c, 0, 100, tmu=1.0, ft=2.0 + c) for c in range(4)]
    for r in results:  # a control, farther still: compared, never a claim
        r["models"]["random_k"] = {**r["models"]["finetune"], "abs_delta": 5.0 + 2 * r["forget_class"]}
    paired = tables(results)["paired"].set_index("method")
    # the family is {original, FT}: the original's t p is nan (the same difference everywhere), so m = 1 for t
    assert paired.loc["FT", "p Holm"] == pytest.approx(paired.loc["FT", "p"])
    assert math.isnan(paired.loc["Rand-k†", "p Holm"]) and np.isfinite(paired.loc["Rand-k†", "p"])
    assert paired.loc["Rand-k†", "significant"].startswith("control: not a claim")
    # exact tests over {original, FT}: 4 of 4 closer, 0.125 each -> Holm 0.25; 4 classes cannot pass (2 x 2/16)
    assert list(paired.loc[["Orig", "FT"], "Wilcoxon p Holm"]) == pytest.approx([0.25, 0.25])
    assert "no exact test can: 4 classes, 2 comparisons, smallest exact Holm p 0.250" in paired.loc["FT", "significant"]
    # TMU - FT = -(1 + c): SD 1.29 over 4 classes
    sd = float(np.std([-1.0, -2.0, -3.0, -4.0], ddof=1))
    assert paired.loc["FT", "detectable (80% power)"] == pytest.approx(P.detectable_difference(sd, 4))


def test_agreement_leader_counts_show_ties_apart():
    from tmu_core.evaluate.paper_tables import leader_counts

    cells = ["FT", "FT", "TMU", "FT, TMU", "SCRUB, FT, TMU", ""]
    assert leader_counts(cells) == "outright: FT 2, TMU 1; tied: 2 runs (FT in 2, TMU in 2, SCRUB in 1)"


def test_with_summary_without_groups_adds_one_avg_and_one_ci_row():
    df = P.with_summary(pd.DataFrame({"class": ["a", "b"], "x": [1.0, 3.0]}))
    assert list(df["class"]) == ["a", "b", "Avg (2 rows)", "95% CI ± (2 rows)"] and df["x"].iloc[2] == 2.0


def test_export_adds_another_sweeps_matching_runs_and_rebuilds_the_tables(tmp_path, monkeypatch):
    """benchmarks/export_sweep.py --add: runs already made by another sweep join the tables instead of being
    computed again; --add-where keeps only the matching ones, and a K = 3 run joins a K = 1 sweep as K = 1."""
    from tmu_core import store

    monkeypatch.setenv("TMU_RUNS_DIR", str(tmp_path / "runs"))
    export = benchmark("export_sweep", monkeypatch)
    monkeypatch.setattr(export, "RESULTS", tmp_path / "results")
    extra = {"dataset": "digits", "model": "small_cnn", "device": "cpu", "cost_ratio": 0.2}
    own = [{**fake_result(c, 0, 100, tmu=1.0, ft=5.0), **extra} for c in (0, 2)]
    other = [
        {**fake_result(c, s, 100, tmu=3.0, ft=7.0), **extra, "gold_ensemble": {"k": 3}} for s in (0, 1) for c in (3, 8)
    ]
    store.Sweep("own").save_results(
        {"sweep_id": "own", "results": own, "failed": [], "tuning_classes": [3], "gold_seeds": 1}
    )
    store.Sweep("other").save_results({"sweep_id": "other", "results": other, "failed": [], "gold_seeds": 3})
    assert (
        export.main(["--sweep-id", "own", "--add", "other", "--add-where", "seed=0", "--name", "all", "--command", "x"])
        == 0
    )
    t1 = pd.read_csv(tmp_path / "results" / "all-table1.csv").set_index("class")
    assert {"0", "2", "3", "8"} <= set(t1.index)  # seed 1 of the other sweep left out
    assert t1.loc["Avg (held-out: 3 classes, 3 runs)", "TMU |Δ|"] == pytest.approx(5 / 3)  # 0, 2, 8: 1, 1, 3
    assert t1.loc["Avg (tuning: 1 class, 1 run)", "TMU |Δ|"] == pytest.approx(3.0)  # class 3 is tuning
    assert not (tmp_path / "results" / "all-ensemble.csv").exists()  # added K = 3 runs count as K = 1 here
    cost = pd.read_csv(tmp_path / "results" / "all-cost.csv").set_index("class")
    assert cost.loc["Avg (tuning: 1 class, 1 run)", "cost ratio"] == pytest.approx(0.2)  # every fake run's ratio
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
    av = benchmark("audit_variants", monkeypatch)
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


def test_audit_variants_summarise_and_pair_with_the_class_as_the_unit(monkeypatch):
    av = benchmark("audit_variants", monkeypatch)
    # reference: class 3 seeds 1, 3 (mean 2), class 8: 10, 10; variant x is 1 lower on every run
    rows = [
        {
            "variant": v,
            "class": c,
            "seed": s,
            **{col: 0.0 for col in av.COLUMNS},
            "TMU |Δ|": (1.0 + 2 * s if c == 3 else 10.0) - (v == "x"),
        }
        for v in ("paper", "x")
        for c in (3, 8)
        for s in (0, 1)
    ]
    df = pd.DataFrame(rows)
    summ = av.summary(df).set_index("variant")
    assert (summ.loc["paper", "classes"], summ.loc["paper", "runs"]) == (2, 4)
    # class means 2 and 10: mean 6, t(0.975, 1) x s / sqrt 2 = 12.706 x 4 = 50.8
    assert summ.loc["paper", "TMU |Δ|"] == "6.0 ± 50.8"
    pair = av.paired(df, "paper").set_index("metric").loc["TMU |Δ|"]
    assert (pair["classes"], pair["runs"], pair["variant − reference"]) == (2, 4, -1.0)
    assert pair["sign p"] == 0.5  # 2 of 2 classes lower: 2 / 4


def test_the_verdict_table_names_a_winner_only_above_the_floor_and_counts_the_runs():
    # |D_f| = 100, one gold: 5-image floor. Class 1: TMU 1 vs FT 10 -> TMU; class 2: TMU 1 vs FT 3 -> a tie;
    # class 3: the original (20) within 5 of both -> no method shown better than doing nothing
    results = [
        fake_result(1, 0, 100, tmu=1.0, ft=10.0),
        fake_result(2, 0, 100, tmu=1.0, ft=3.0),
        fake_result(3, 0, 100, tmu=17.0, ft=18.0),
    ]
    v = tables(results)["verdict"].set_index("class")
    assert list(v["closest to gold"]) == [
        "TMU",
        "tie: TMU, FT",
        "none: TMU, FT tie the original",
        "winner named: TMU 1; no winner: 2",
    ]
    assert list(v["original ties"]) == ["no", "no", "yes", "1 of 3"] and v.loc["1", "noise floor (images)"] == 5
    assert v.loc["1", "floor from"] == "default" and v.loc["1", "agreement floor (images)"] == 4  # gold A_f 80
    assert v.loc["all 3 runs", "agreement leaders"].startswith("outright: TMU")


def test_the_sweep_header_counts_the_golds_of_runs_merged_from_sweeps_of_different_k():
    from tmu_core.jobs.sweep import golds_line

    k3 = {**fake_result(1, 0, 100, tmu=1.0, ft=2.0), "gold_ensemble": {"k": 3}}
    k1 = fake_result(2, 0, 100, tmu=1.0, ft=2.0)
    assert golds_line([k3, k3]) == "3 gold model(s) per run"
    assert golds_line([k1]) == "1 gold model(s) per run"
    assert golds_line([k1, k3, k1]) == "gold models per run: 3 in 1 runs, 1 in 2 runs"


def test_gold_init_scores_the_same_models_against_a_shared_and_an_own_initialisation_gold(tmp_path, monkeypatch):
    """benchmarks/gold_init.py: the 'own' gold is the one every run trains (reference_key), the 'shared' one
    trains from the original's seed; the effect table's class means are those of the per-class rows."""
    from clitools import TINY_TMU, TINY_TRAIN

    from tmu_core import store
    from tmu_core.cli import add_run_args, run_config_from_args
    from tmu_core.data import load_dataset, resolve_forget
    from tmu_core.references import cache_key, reference_key

    monkeypatch.setenv("TMU_RUNS_DIR", str(tmp_path / "runs"))
    gi = benchmark("gold_init", monkeypatch)
    monkeypatch.setattr(gi, "RESULTS", tmp_path / "results")
    argv = [*TINY_TRAIN, *TINY_TMU, "--finetune-epochs", "1", "--classes", "8", "--tag", "t"]
    assert gi.main(argv) == 0
    md = (tmp_path / "results" / "digits-small_cnn-gold-init-t.md").read_text()
    assert "| 8 | original |" in md and "| 8 | finetune |" in md and "| 8 | tmu |" in md

    import argparse

    p = argparse.ArgumentParser()
    add_run_args(p)
    cfg = run_config_from_args(p.parse_args([*TINY_TRAIN, "--forget-class", "8"]))
    data = load_dataset(cfg.data, cfg.seed)
    remain = resolve_forget(data, cfg.forget, cfg.seed).remain_ids(data)
    own = reference_key("gold", cfg.data, cfg.train, cfg.seed, remain)
    shared = cache_key("gold", cfg.data, cfg.train, cfg.seed, remain)
    assert own != shared and store.model_cache_file(own).exists() and store.model_cache_file(shared).exists()

    rows = [
        dict(model=m, **{f"{lab} ({k})": v for lab in gi.MEASURES.values() for k, v in (("shared", a), ("own", b))})
        for m, a, b in (("x", 1.0, 2.0), ("x", 3.0, 7.0), ("y", 5.0, 5.0), ("y", 5.0, 5.0))
    ]
    eff = gi.effect_table(pd.DataFrame(rows)).set_index(["model", "measure"])
    assert eff.loc[("x", "|Δ|"), "vs own-init gold"] == pytest.approx(4.5)
    assert eff.loc[("x", "|Δ|"), "own minus shared"] == pytest.approx(2.5)
    assert eff.loc[("x", "agree"), "classes up / down"] == "2 / 0" and eff.loc[("y", "agree"), "classes"] == 2


def test_rerun_noise_summarises_each_method_s_spread_for_the_verdict(monkeypatch):
    rn = benchmark("rerun_noise", monkeypatch)
    df = pd.DataFrame(
        {
            "method": ["tmu"] * 6 + ["finetune"] * 3,
            "class": [1, 1, 1, 3, 3, 3, 1, 1, 1],
            "seed": [0] * 9,
            "A_f": [70.0, 78.0, 74.0, 50.0, 52.0, 51.0, 90.0, 90.0, 91.0],
            "|Δ|": [2.0, 6.0, 2.0, 1.0, 1.0, 0.0, 20.0, 20.0, 21.0],
            "agreement": [80.0, 84.0, 82.0, 70.0, 70.0, 70.0, 85.0, 85.0, 86.0],
            "act dist": [0.3] * 9,
        }
    )
    cells = rn.spreads(df).set_index(["method", "class"])
    assert cells.loc[("tmu", 1), "A_f range"] == 8.0 and cells.loc[("tmu", 3), "A_f range"] == 2.0
    assert cells.loc[("tmu", 1), "A_f SD"] == pytest.approx(4.0)
    entry = rn.package_entry("digits", rn.summary(rn.spreads(df)), "f.md", 100)
    # the verdict reads the mean range over cells: TMU (8 + 2) / 2, fine-tuning 1; agreement (4 + 0) / 2, 1
    assert entry["range_points"] == {"tmu": 5.0, "finetune": 1.0}
    assert entry["agreement_range_points"] == {"tmu": 2.0, "finetune": 1.0}


def test_rescore_rebuilds_a_sweep_s_runs_from_its_own_csvs(tmp_path, monkeypatch):
    rs = benchmark("rescore", monkeypatch)
    results = [fake_result(c, s, 100, tmu=1.0 + c + s, ft=5.0 + 2 * c) for s in (0, 1) for c in (3, 4, 5)]
    for r in results:
        r["dataset"] = "digits"
    frames = tables(results, tuning_classes=[3])
    for key in ("table1", "table3", "mia"):
        frames[key].to_csv(tmp_path / f"x-{key}.csv", index=False)
    back = rs.results_from_csvs(tmp_path / "x", "digits", 100)
    assert [(r["forget_class"], r["seed"]) for r in back] == [(r["forget_class"], r["seed"]) for r in results]
    assert back[0]["models"]["tmu"]["abs_delta"] == results[0]["models"]["tmu"]["abs_delta"]
    again = tables(back, tuning_classes=[3])
    pd.testing.assert_frame_equal(again["paired"], frames["paired"])
    pd.testing.assert_frame_equal(again["verdict"], frames["verdict"])


def test_tables_read_a_dict_and_its_typed_model_alike():
    import json
    from pathlib import Path

    from tmu_core.evaluate.paper_tables import cost_frame
    from tmu_core.store.schema import SweepResult, read_metrics

    results = [fake_result(c, s, n, tmu=1.0 + c + s, ft=5.0 + 2 * c) for n in (50, 100) for s in (0, 1) for c in (3, 4)]
    for i, r in enumerate(results):
        r["models"]["tmu"]["seconds"], r["models"]["gold"]["seconds"], r["cost_ratio"] = 1.0 + i, 10.0, 0.1 * i
        r["tmu"] = {
            "label_accuracy": 80.0 + i,
            "label_accuracy_by_features": {"NF+AF+CF": 80.0 + i, "NF": 70.0},
            "auc_p_easy": 60.0 + i,
            "gold_hard": 10,
            "pred_hard": 12,
            "pred_easy": r["forget_count"] - 12,
            "aux_hard": 5,
            "aux_easy": 45,
            "aux_count": 50,
        }
        r["gold_ensemble"] = {
            "k": 3,
            "gold_agreement": 90.0,
            "ceiling": 95.0,
            "gold_acc_forget": [80.0, 81.0 + i, 79.0],
        }
    del results[1]["models"]["finetune"]  # a method that diverged in one run
    typed = [SweepResult.model_validate(r) for r in results]
    frames, again = tables(results, tuning_classes=[3]), tables(typed, tuning_classes=[3])
    assert {"table1", "table4", "ensemble", "verdict", "paired", "curve"} <= set(
        frames
    ) and frames.keys() == again.keys()
    for key in frames:
        pd.testing.assert_frame_equal(frames[key], again[key], check_exact=True)
    pd.testing.assert_frame_equal(cost_frame(results, [3]), cost_frame(typed, [3]), check_exact=True)
    # a run read back by the store (MetricsFile) gives the tables its metrics.json dict gives
    raw = json.loads(
        (Path(__file__).resolve().parents[1] / "benchmarks/results/cifar10-small_cnn-class3.json").read_text()
    )
    for key, frame in tables([raw]).items():
        pd.testing.assert_frame_equal(frame, tables([read_metrics(raw, "metrics.json")])[key], check_exact=True)
