"""The gold-free forecast: calibrated p(easy), the decision's words, the predicted A_f's interval and the
self-influence peer."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from tmu_core.tmu.classifier import KEPT, UNDECIDED, UNLEARNED, call_words, decide
from tmu_core.tmu.forecast import (
    combine,
    cross_fit,
    ece,
    fit_calibrator,
    forecast_words,
    logit,
    predict_accuracy,
    reliability,
    source_folds,
)
from tmu_core.tmu.influence import self_influence

pytestmark = pytest.mark.fast


def overconfident(n=2000, seed=0):
    """Raw scores of a classifier that is right 75% of the time at the ends but claims 99%."""
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.05, 0.95, n)
    y = (rng.random(n) < true_p).astype(int)
    claimed = 1 / (1 + np.exp(-6 * logit(true_p)))  # six times too steep: probabilities near 0 and 1
    return logit(claimed), y, true_p


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_miscalibrated_classifier_gets_calibrated(method):
    z, y, _ = overconfident()
    raw = 1 / (1 + np.exp(-z))
    cal = fit_calibrator(z[:1000], y[:1000], method)
    p = cal(z[1000:])
    assert ece(raw[1000:], y[1000:]) > 0.2  # the raw scores are far off
    assert ece(p, y[1000:]) < 0.06
    assert ((p >= 0) & (p <= 1)).all()


def test_calibrated_probabilities_stay_inside_laplace_bounds_for_a_small_twin():
    z = np.array([-30.0, -25, 20, 25, 30, 35, 40, 28])  # separable, extreme raw logits
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    p = fit_calibrator(z, y, "platt", n_images=8)(np.array([-1e6, 0.0, 1e6]))
    assert p.min() >= 1 / 10 - 1e-12 and p.max() <= 9 / 10 + 1e-12


def test_isotonic_with_few_hard_samples_falls_back_to_platt_and_says_so():
    z, y, _ = overconfident(30)
    cal = fit_calibrator(z, y, "isotonic")
    assert cal.kind == "platt" and "isotonic needs" in cal.note


def test_scores_ranked_the_wrong_way_on_held_out_samples_give_the_base_rate():
    z = np.arange(20.0)
    y = (z < 5).astype(int)  # higher score = hard: the classifier learned nothing that transfers
    cal = fit_calibrator(z, y, "platt")
    p = cal(np.array([-5.0, 50.0]))
    assert cal.a == 0 and p[0] == pytest.approx(p[1])


def test_cross_fit_keeps_a_source_images_copies_in_one_fold_and_never_scores_its_own_fit():
    groups = np.repeat(np.arange(10), 3)
    folds = source_folds(groups, 5, seed=1)
    assert all(len(set(folds[groups == g])) == 1 for g in range(10))
    x = np.arange(30.0)[:, None]
    seen = []

    def fit_score(xt, yt):
        seen.append(set(xt[:, 0]))
        return lambda q: np.zeros(len(q))

    cross_fit(x, np.ones(30), groups, fit_score, 5, seed=1)
    assert len(seen) == 5 and all(len(s) == 24 for s in seen)


def test_interval_covers_a_poisson_binomial_truth_at_its_level():
    """Synthetic twin and forget sets from one calibrated world: the 90% interval holds the realised A_f in
    about 90% of repetitions."""
    covered, widths = [], []
    for rep in range(60):
        rng = np.random.default_rng(rep)
        true_p = lambda z: 1 / (1 + np.exp(-(1.5 * z + 1.5)))  # noqa: E731
        z_a, z_f = rng.normal(size=150), rng.normal(size=100)
        y_a = (rng.random(150) < true_p(z_a)).astype(int)
        gold = 100 * (rng.random(100) < true_p(z_f)).mean()
        fc = predict_accuracy(z_f, z_a, y_a, np.arange(150), seed=rep, n_boot=200)
        covered.append(fc.low <= gold <= fc.high)
        widths.append(fc.high - fc.low)
        assert fc.low <= fc.expected <= fc.high
    assert 0.8 <= np.mean(covered) <= 1.0
    assert np.mean(widths) < 25


def test_thin_evidence_widens_the_interval_and_says_why():
    rng = np.random.default_rng(0)
    z_f = rng.normal(size=100)
    big = rng.normal(size=300)
    y_big = (rng.random(300) < 1 / (1 + np.exp(-(2 * big + 2)))).astype(int)
    wide = predict_accuracy(z_f, big[:12], np.r_[0, y_big[1:12] | 1], np.arange(12))  # 12 images, 1 hard
    narrow = predict_accuracy(z_f, big, y_big, np.arange(300))
    assert wide.high - wide.low > 1.5 * (narrow.high - narrow.low)
    assert any("distinct aux images" in r for r in wide.reasons)
    assert any("hard aux image" in r for r in wide.reasons)
    assert narrow.reasons == ()
    assert "wide because" in forecast_words(wide) and "wide because" not in forecast_words(narrow)


def test_a_twin_without_hard_examples_forecasts_from_its_easy_rate_with_a_wide_interval():
    fc = predict_accuracy(np.zeros(40), np.zeros(14), np.ones(14, int), np.arange(14))
    assert fc.calibration.startswith("the twin's easy rate")
    assert any("no hard example" in r for r in fc.reasons)
    assert fc.high - fc.low >= 10


def test_the_no_hard_example_message_replaces_every_call():
    p = np.array([0.0005, 0.3, 0.9])
    d = decide(p, p, "prior", 0.0, np.ones(10), np.ones(10, int))
    assert d.undecided
    verdict, action = call_words(p, d.pred, d.undecided)
    assert set(verdict) == {"undecided"} and set(action) == {UNDECIDED}
    assert "cannot tell" in UNDECIDED


@pytest.mark.parametrize("rule", ["prior", "0.5", "auto"])
@pytest.mark.parametrize("hard_rate", [0.0, 0.02, 0.3])
def test_words_never_contradict_p_easy(rule, hard_rate):
    rng = np.random.default_rng(3)
    p = np.r_[0.0005, 0.0057, rng.uniform(0, 1, 38)]
    p_twin, y_twin = rng.uniform(0, 1, 50), (rng.random(50) < 0.7).astype(int)
    d = decide(p, p, rule, hard_rate, p_twin, y_twin)
    verdict, action = call_words(p, d.pred, d.undecided)
    assert not any(a == KEPT for a, q in zip(action, p) if q < 0.5)  # "would still get it right" only at >= 0.5
    assert not any(a == UNLEARNED for a, q in zip(action, p) if q >= 0.5)
    assert all(q >= d.threshold for q, v in zip(p, d.pred) if v == 1)  # the stated cut separates the calls
    assert all(q <= d.threshold for q, v in zip(p, d.pred) if v == 0)
    assert str(round(d.threshold, 4))[:4] in d.rule_words


def test_prior_rule_with_no_hard_quota_states_no_cut_and_says_so_in_words():
    p = np.array([0.0005, 0.0057, 0.9, 0.95])
    d = decide(p, p, "prior", 0.02, np.array([0.1, 0.9]), np.array([0, 1]))
    assert d.pred.tolist() == [1, 1, 1, 1] and d.threshold == 0.0
    _, action = call_words(p, d.pred, d.undecided)
    assert action[0] != KEPT and "more likely get it wrong" in action[0]


def test_combined_forecast_weights_classes_by_their_files():
    a = predict_accuracy(
        np.full(30, 5.0),
        np.r_[np.full(20, 5.0), np.full(5, -5.0)],
        np.r_[np.ones(20), np.zeros(5)].astype(int),
        np.arange(25),
    )
    b = predict_accuracy(
        np.full(10, -5.0),
        np.r_[np.full(20, 5.0), np.full(5, -5.0)],
        np.r_[np.ones(20), np.zeros(5)].astype(int),
        np.arange(25),
    )
    both = combine([a, b])
    assert both.n == 40
    assert both.expected == pytest.approx((30 * a.expected + 10 * b.expected) / 40)
    assert both.low <= both.expected <= both.high


def test_reliability_bins_and_ece_by_hand():
    p = np.array([0.05, 0.15, 0.95, 0.95])
    y = np.array([0, 0, 1, 0])
    bins = reliability(p, y)
    assert [b["n"] for b in bins] == [1, 1, 2]
    assert ece(p, y) == pytest.approx((0.05 + 0.15 + 2 * abs(0.95 - 0.5)) / 4)


def test_a_mislabelled_point_has_higher_self_influence_than_a_typical_one():
    """TracIn over checkpoints on two Gaussian blobs with one flipped label."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(40, 2, generator=g) + 2.5, torch.randn(40, 2, generator=g) - 2.5])
    y = torch.cat([torch.zeros(40), torch.ones(40)]).long()
    y[0] = 1  # mislabelled: it sits in the middle of class 0
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    checkpoints = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        checkpoints.append({k: v.clone() for k, v in net.state_dict().items()})
    si = self_influence(net, x, y, torch.device("cpu"), checkpoints, [0.1] * len(checkpoints))
    assert si[0] > 5 * np.median(si[1:])
    assert (si >= 0).all()
    final_only = self_influence(net, x, y, torch.device("cpu"))
    assert final_only[0] > np.median(final_only[1:])


def test_reliability_figure_draws_the_diagonal_and_one_line_per_curve():
    from ui.charts import reliability_figure

    bins = [{"p_mean": 0.2, "truth_mean": 0.3, "n": 4}, {"p_mean": 0.9, "truth_mean": 0.85, "n": 40}]
    fig = reliability_figure({"twin": bins, "gold": bins[:1], "empty": []})
    assert [t.name for t in fig.data] == ["calibrated", "twin", "gold"]
    assert list(fig.data[1].x) == [0.2, 0.9] and list(fig.data[1].y) == [0.3, 0.85]
    assert fig.data[1].marker.size[1] > fig.data[1].marker.size[0]  # the bigger bin draws bigger


def test_a_flat_calibration_keeps_the_classifiers_ranking():
    """A twin with one label calibrates every file to one p(easy); the ranking (and so the AUC) is the raw one."""
    from types import SimpleNamespace

    import tmu_core.methods  # noqa: F401  (the method registry first, as every caller imports it)
    from tmu_core.tmu.report import TMUReport

    rep = SimpleNamespace(forget_p_easy=np.full(4, 0.94), forget_p_raw=np.array([0.9, 0.1, 0.99, 0.5]))
    assert TMUReport.ranking.fget(rep).tolist() == [2, 0, 3, 1]


def test_a_requests_forecast_names_the_class_of_each_reason():
    thin = predict_accuracy(np.zeros(10), np.zeros(12), np.ones(12, int), np.arange(12))
    a = combine([thin, thin], names=["3", "5"])
    assert any(r.startswith("class 3: ") for r in a.reasons) and any(r.startswith("class 5: ") for r in a.reasons)
    d = decide(np.full(5, 0.9), np.full(5, 0.9), "prior", 0.0, np.ones(12), np.ones(12, int))
    assert "no file is called hard" in d.rule_words and "no hard example" in d.rule_words
