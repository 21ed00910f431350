"""The verdict of one run (evaluate.verdict, EVALUATION.md §5) on hand-made metrics: the noise floor, ties,
the untouched original as a candidate, controls left out, and the leaders by measure."""

import math

import pytest

from tmu_core.cli import _summary
from tmu_core.evaluate.verdict import noise_floor, verdict
from tmu_core.store.schema import MetricsFile, read_metrics

pytestmark = pytest.mark.fast  # `make test-fast`


def model(delta: float, agree: float = 90.0, dist: float = 0.2) -> dict:
    known = math.isfinite(delta)  # no |Δ| (a run on the user's model without gold) is stored as null
    return {
        "acc_test": 95.0,
        "acc_remain": 99.0,
        "acc_forget": min(100.0, 80.0 + delta) if known else 80.0,
        "delta": delta if known else None,
        "abs_delta": abs(delta) if known else None,
        "sample_agreement": agree,
        "activation_distance": dist,
        "mia": 50.0,
        "mia_auc": 55.0,
        "seconds": 1.0,
    }


def run(n: int = 100, golds=None, **deltas) -> MetricsFile:
    """Metrics as the store reads them back: gold, and every keyword a model with that |Δ| (a tuple: |Δ|,
    agreement, distance)."""
    return read_metrics(run_dict(n, golds, **deltas), "a test's metrics")


def run_dict(n: int = 100, golds=None, **deltas) -> dict:
    """`run`'s metrics.json as a dict."""
    models = {"gold": model(0.0, 100.0, 0.0)}
    deltas.setdefault("original", 0.0)  # every stored run has one
    for name, d in deltas.items():
        models[name] = model(*d) if isinstance(d, tuple) else model(d)
    out = {
        "run_id": "r",
        "dataset": "digits",
        "model": "small_cnn",
        "forget_class": 8,
        "forget_class_name": "8",
        "forget_count": n,
        "device": "cpu",
        "models": models,
    }
    if golds:
        out["gold_ensemble"] = {"k": len(golds), "gold_acc_forget": golds}
    return out


def test_the_digits_demo_ties_the_original_so_no_method_is_named():
    # the digits demo's numbers: original 3, TMU 2, FT/NG/BT 3, RL/SCRUB/SalUn 97; controls random_k 16, oracle 0
    m = run(
        original=(3.0, 97.0, 0.110),
        tmu=(2.0, 94.0, 0.121),
        finetune=(3.0, 97.0, 0.110),
        neggrad=(3.0, 97.0, 0.100),
        randlabel=97.0,
        random_k=16.0,
        oracle_labels=(0.0, 100.0, 0.066),
    )
    v = verdict(m)
    assert v.floor.images == 5 and v.floor.source == "default"  # 5% of 100 images, one gold
    assert v.leaders == ("tmu", "original", "finetune", "neggrad")  # TMU 2 images, the rest 3: within 5
    assert v.winner is None and v.original_ties
    assert v.headline() == "none: TMU, FT, NG tie the original"
    assert "oracle_labels" not in v.leaders and "random_k" not in v.leaders  # a control at |Δ| 0 is no candidate
    text = v.text()
    assert "no method is shown to have unlearned anything aligned better than doing nothing" in text
    assert "about 5 images" in text
    assert v.agreement_leaders[:3] == ("original", "finetune", "neggrad") and "tmu" in v.agreement_leaders
    assert v.distance_leader == "neggrad"  # the control's 0.066 does not count


def test_a_method_is_closest_only_beyond_the_noise_floor():
    apart = verdict(run(original=20.0, tmu=0.0, finetune=(6.0, 95.0), oracle_labels=0.0))
    assert apart.winner == "tmu" and apart.headline() == "TMU" and not apart.original_ties
    assert apart.text().startswith("Closest to gold: TMU (|Δ| 0.0, 0 images), ahead of every other method")
    # 5 images apart is not more than the 5-image floor: a tie, named without the control
    tie = verdict(run(original=20.0, tmu=0.0, finetune=5.0, oracle_labels=0.0))
    assert tie.winner is None and tie.leaders == ("tmu", "finetune") and tie.headline() == "tie: TMU, FT"
    lone = verdict(run(original=20.0, tmu=0.0))  # one method, the original far off: it wins over doing nothing
    assert lone.winner == "tmu"
    first = verdict(run(original=1.0, tmu=9.0, finetune=12.0))  # the original beats every method
    assert first.winner is None and first.leaders == ("original",) and first.headline() == "none: the original leads"


def test_noise_floor_from_the_gold_ensemble_in_images():
    assert noise_floor(run(golds=[80.0, 83.0, 86.0])).images == 6  # range 6 points of 100 images
    floor = noise_floor(run(n=50, golds=[80.0, 83.0, 86.0]))
    assert (floor.images, floor.source, floor.k) == (3, "golds", 3)  # 6 points of 50 images = 3 images
    assert "3 gold models" in floor.text(50) and "6.0 points" in floor.text(50)
    assert noise_floor(run(golds=[90.0, 90.0])).images == 1  # golds that agree: still at least one image
    # one gold: 1.15 sqrt(n p (1 - p)) with p = gold's A_f (80% here), rounded, at least one image
    assert noise_floor(run(n=30)).images == 3  # 1.15 * sqrt(30 * 0.16) = 2.52
    assert noise_floor(run(n=10)).images == 1  # 1.15 * sqrt(1.6) = 1.45
    assert noise_floor(run(n=1000)).images == 15  # 1.15 * sqrt(160) = 14.5: grows like sqrt(n), not 5% of n (50)
    # the ensemble's floor decides the tie: TMU 0, FT 4 images apart is a tie at 6, a win at 3 (golds 2 apart)
    assert verdict(run(golds=[80.0, 86.0], original=20.0, tmu=0.0, finetune=4.0)).winner is None
    assert verdict(run(golds=[80.0, 83.0], original=20.0, tmu=0.0, finetune=4.0)).winner == "tmu"


def test_the_default_floor_is_a_binomial_spread_around_gold_s_a_f():
    half = run_dict(n=20, original=20.0)
    half["models"]["gold"]["acc_forget"] = 50.0
    assert noise_floor(read_metrics(half, "m")).images == 3  # 1.15 * sqrt(20 * 0.25) = 2.57
    half["models"]["gold"]["acc_forget"] = 100.0  # gold right on every sample: no binomial spread, still one image
    assert noise_floor(read_metrics(half, "m")).images == 1


RERUN = {
    "digits": {
        "source": "rerun-noise-digits.md",
        "forget_count": 100,
        "range_points": {"tmu": 8.0, "salun": 12.0, "finetune": 2.0},
        "agreement_range_points": {"tmu": 6.0},
    },
    "imagefolder": {"source": "rerun-noise-imagefolder.md", "forget_count": 100, "range_points": {"tmu": 10.0}},
}


def test_a_method_s_floor_is_the_larger_of_gold_s_spread_and_its_own_rerun_spread():
    m = run(original=20.0, tmu=0.0, finetune=6.0, salun=30.0)
    assert verdict(m, rerun={}).winner == "tmu"  # default floor 5 images: FT 6 apart is beyond it
    v = verdict(m, rerun=RERUN)
    assert (v.row("tmu").floor, v.row("tmu").floor_source) == (8.0, "rerun")  # TMU's rerun moves it by 8
    assert (v.row("finetune").floor, v.row("finetune").floor_source) == (5.0, "default")  # 2 < gold's 5
    assert (v.row("original").floor, v.row("original").floor_source) == (5.0, "default")  # doing nothing: no rerun
    assert v.winner is None and v.leaders == ("tmu", "finetune")  # 6 apart: within max(8, 5)
    assert "salun" not in v.leaders  # 30 apart is beyond max(8, 12)
    assert "a method's own rerun moves its A_f by more" in v.text() and "TMU 8 images" in v.text()
    assert "SalUn 12 images" in v.text()  # in this run
    assert "SalUn" not in verdict(run(original=20.0, tmu=0.0), rerun=RERUN).text()  # not in this run: not named
    assert v.lead_floor == 8.0
    ens = verdict(run(golds=[80.0, 90.0], original=20.0, tmu=0.0, finetune=6.0), rerun=RERUN)
    assert (ens.row("tmu").floor, ens.row("tmu").floor_source) == (10.0, "gold")  # golds span 10 > TMU's 8
    # at 25 images the measured 8 points (at 100) scale as a binomial spread: 8 * sqrt(25 * 100) / 100 = 4
    assert verdict(run(n=25, original=20.0, tmu=0.0), rerun=RERUN).floor.rerun["tmu"] == 4.0
    # a data set never measured takes the largest spread measured on any
    other = run_dict(original=20.0, tmu=0.0)
    other["dataset"] = "mnist"
    assert verdict(read_metrics(other, "m"), rerun=RERUN).floor.rerun["tmu"] == 10.0


def test_agreement_leaders_have_their_own_floor_from_gold_vs_gold_disagreement():
    # one gold at A_f 80: two golds would disagree on 0.4 * 2 * 100 * 0.16 = 12.8 samples; 1.693 * sqrt(6.4) = 4.3
    m = run(original=(20.0, 80.0), tmu=(0.0, 85.0), finetune=(10.0, 90.0))
    f = noise_floor(m, rerun={})
    assert (f.agreement_images, f.agreement_source) == (4.0, "default") and abs(f.disagreement_images - 12.8) < 1e-9
    assert verdict(m, rerun={}).agreement_leaders == ("finetune",)  # 5 points apart: beyond 4
    # K golds measured: they agree on 70% of D_f, D = 30 samples, 1.693 * sqrt(15) = 6.6 -> 7: now a tie
    d = run_dict(original=(20.0, 80.0), tmu=(0.0, 85.0), finetune=(10.0, 90.0), golds=[80.0, 81.0, 80.0])
    d["gold_ensemble"]["gold_agreement"] = 70.0
    v = verdict(read_metrics(d, "m"), rerun={})
    assert (v.floor.agreement_images, v.floor.agreement_source) == (7.0, "golds")
    assert v.floor.images == 1  # the |Δ| floor is the golds' A_f range (1 point): the two floors differ
    assert v.agreement_leaders == ("finetune", "tmu")
    assert "the 3 golds disagree with one another on 30.0 samples" in v.text()
    # a method's rerun range of agreement counts too: TMU's 6 points against the default 4
    assert verdict(m, rerun=RERUN).row("tmu").agreement_floor_source == "rerun"
    assert verdict(m, rerun=RERUN).agreement_leaders == ("finetune", "tmu")


def test_the_verdict_says_when_leaders_differ_by_measure():
    v = verdict(run(original=(20.0, 80.0, 0.5), tmu=(0.0, 80.0, 0.4), finetune=(10.0, 99.0, 0.1)))
    assert v.winner == "tmu" and v.agreement_leaders == ("finetune",) and v.distance_leader == "finetune"
    assert "The leaders differ by measure: on |Δ| TMU; on per-sample agreement with gold FT 99.0%" in v.text()
    same = verdict(run(original=(20.0, 80.0, 0.5), tmu=(0.0, 99.0, 0.1), finetune=(10.0, 80.0, 0.4)))
    assert "Leaders by measure" in same.text() and "differ by measure" not in same.text()


def test_a_run_without_methods_and_a_diverged_method():
    alone = verdict(run(original=3.0))
    assert alone.headline() == "no method run" and not alone.original_ties and alone.winner is None
    v = verdict(run(original=20.0, tmu=0.0, finetune=float("nan")))  # a method without a finite |Δ| is left out
    assert v.winner == "tmu" and "finetune" not in v.leaders and not math.isnan(v.row("tmu").abs_delta)


def test_the_cli_summary_prints_the_verdict():
    text = _summary(
        run(original=(3.0, 97.0, 0.11), tmu=(2.0, 94.0, 0.12), finetune=(3.0, 97.0, 0.11), oracle_labels=0.0)
    )
    assert "verdict: none: TMU, FT tie the original" in text
    assert "no method is shown to have unlearned anything aligned better than doing nothing" in text
    assert "never a candidate for 'closest to gold'" in text


def test_the_original_alone_in_front_is_said_plainly():
    v = verdict(run(original=1.0, tmu=9.0, finetune=12.0))
    assert v.sentences()[0] == (
        "The untouched original (|Δ| 1.0, 1 image) is closer to gold than every method by more than the noise floor."
    )
    assert "better than doing nothing" in v.text()


def test_missing_or_null_numbers_are_left_out_not_a_crash():
    m = run_dict(original=20.0, tmu=0.0, finetune=3.0, golds=[80.0, float("nan")])
    m["models"]["finetune"].update(abs_delta=None, sample_agreement=None)
    del m["models"]["tmu"]["activation_distance"]
    v = verdict(read_metrics(m, "metrics"))
    assert v.floor.source == "default" and v.winner == "tmu" and "finetune" not in v.leaders


def test_the_step_check_compares_achieved_a_f_with_what_the_split_asked():
    from tmu_core.evaluate.verdict import step_check_block

    d = run_dict(original=20.0, tmu=-9.0, oracle_labels=-3.0)  # A_f: gold 80, TMU 71, oracle 77
    d["tmu"] = {"label_accuracy": 80.0, "pred_easy": 78, "pred_hard": 22, "gold_hard": 20, "aux_count": 50}
    d["tmu"].update(gold_easy=80, auc_p_easy=70.0, label_accuracy_by_features={}, confusion={})
    d["tmu"].update(aux_easy=40, aux_hard=10, aux_sizing={}, threshold=0.5)
    v = verdict(read_metrics(d, "m"), rerun={})
    tmu, oracle = v.step_checks
    # TMU's split asked to keep 78 of 100 right; it kept 71: 7 images below, beyond the default floor of 5
    assert (tmu.asked, tmu.achieved, tmu.gap, tmu.floor, tmu.within) == (78.0, 71.0, -7.0, 5.0, False)
    # the oracle's step was asked for gold's 80 and kept 77: 3 below, within
    assert (oracle.asked, oracle.gap, oracle.within) == (80.0, -3.0, True)
    assert "TMU's step kept A_f at 71.0% where its split asked for 78.0%: 7 images below, beyond" in v.text()
    block = step_check_block(read_metrics(d, "m"))
    assert block["tmu"]["within_floor"] is False and block["oracle_labels"]["gap_images"] == -3.0
    assert verdict(run(original=20.0, tmu=0.0), rerun={}).step_checks == ()  # no split stored: no check


def test_the_committed_rerun_spreads_are_read_for_their_data_set():
    from tmu_core.evaluate.verdict import measured_rerun, rerun_spread

    table = measured_rerun()
    assert "digits" in table and {"tmu", "salun", "finetune"} <= set(table["digits"]["range_points"])
    runs, agree, where = rerun_spread("digits", 100)
    assert runs["tmu"] == table["digits"]["range_points"]["tmu"] and "rerun-noise-digits.md" in where
    assert rerun_spread(None, 100) == ({}, {}, "")  # a result that names no data set gets none
