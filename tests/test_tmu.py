"""TMU's pieces: feature invariants, Eq. 3 sizing, the classifier, every method, the pipeline and its JSON."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from clitools import TINY_TMU, TINY_TRAIN

from tmu_core.config import DataConfig, ForgetSpec, RunConfig, TrainConfig
from tmu_core.data import load_dataset, resolve_forget
from tmu_core.methods import METHODS, method_config
from tmu_core.references import new_model
from tmu_core.tmu.attacks import adversarial_feature, pgd
from tmu_core.tmu.classifier import ClassifierConfig, balanced_threshold, feature_subsets, train_classifier
from tmu_core.tmu.features import Scaler, nearest_distance
from tmu_core.tmu.twin import build_aux, eq3_size
from tmu_core.train import fit, predict
from tmu_core.unlearn.loop import UnlearnTask

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    cfg = DataConfig()
    data = load_dataset(cfg, 0)
    forget = resolve_forget(data, ForgetSpec(forget_class="8", forget_count=100), 0)
    return cfg, data, forget


@pytest.fixture(scope="module")
def tiny_original(digits):
    cfg, data, _ = digits
    torch.manual_seed(0)
    tc = TrainConfig(epochs=3, batch_size=64, lr=0.05)
    model = new_model(data, tc)
    ids = torch.as_tensor(data.train_ids)
    fit(model, data.x[ids], data.y[ids], tc, CPU, seed=0)
    return tc, model


# ---------------------------------------------------------------- features
@pytest.mark.fast
def test_nf_is_zero_for_a_sample_in_its_own_reference_set():
    ref = torch.randn(20, 8)
    nf = nearest_distance(ref[:5], ref, k=1, normalize=False)
    assert torch.allclose(nf, torch.zeros(5), atol=1e-5)


@pytest.mark.fast
def test_nf_matches_hand_computed_mean_of_k_smallest():
    query = torch.tensor([[0.0, 0.0]])
    ref = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 10.0]])
    assert nearest_distance(query, ref, k=3, normalize=False).item() == pytest.approx((1 + 2 + 3) / 3)


def test_pgd_stays_in_eps_ball_and_pixel_range(tiny_original, digits):
    _, model = tiny_original
    _, data, forget = digits
    x = data.x[torch.as_tensor(forget.ids[:16])].float() / 255
    clean = torch.softmax(model(x), 1).detach()
    eps = 8 / 255
    adv = pgd(model, x, clean, eps, steps=5, step_size=eps / 3)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > 0  # it actually moved


def test_af_grows_with_eps(tiny_original, digits):
    _, model = tiny_original
    _, data, forget = digits
    x = data.x[torch.as_tensor(forget.ids[:32])]
    small = adversarial_feature(model, x, CPU, 2 / 255, 5, 2 / 255 / 3).mean()
    large = adversarial_feature(model, x, CPU, 32 / 255, 5, 32 / 255 / 3).mean()
    assert large > small >= 0


@pytest.mark.fast
def test_scaler_is_fitted_on_twin_and_clips():
    fa = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    s = Scaler.fit(fa, log=False, clip=1.5)
    za = s.transform(fa)
    assert np.allclose(za.mean(0), 0) and np.allclose(za.std(0), 1)
    assert s.transform(np.array([[100.0, -100.0]])).tolist() == [[1.5, -1.5]]


# ---------------------------------------------------------------- Eq. 3 and the aux set
@pytest.mark.fast
def test_eq3_hand_computed():
    assert eq3_size(100, 25) == 500  # 100 * (25 + 100) / 25
    assert eq3_size(100, 4900) == 102  # 100 * 5000 / 4900 = 102.04
    assert eq3_size(10, 90) == 11  # 10 * 100 / 90 = 11.1


@pytest.mark.fast
def test_aux_sample_branch(digits):
    _, data, _ = digits
    forget = resolve_forget(data, ForgetSpec(forget_class="3", forget_count=5), 0)
    aux = build_aux(data, forget, seed=0, max_factor=4, allow_flip=False)
    n_rc = len(forget.remain_class_ids(data))
    assert aux.sizing["requested"] == eq3_size(5, n_rc) <= aux.sizing["available"]
    assert aux.sizing["augmented"] == 0 and len(aux.x) == aux.sizing["requested"]
    assert set(aux.source_ids) <= set(data.aux_ids.tolist())


@pytest.mark.fast
def test_aux_augment_branch_is_capped_and_recorded(digits):
    _, data, forget = digits  # 100 of class 8: Eq. 3 asks ~500 from a pool of ~14
    aux = build_aux(data, forget, seed=0, max_factor=3, allow_flip=False)
    s = aux.sizing
    assert s["requested"] > s["available"] * 3
    assert s["used"] == len(aux.x) == s["available"] * 3 and s["capped"]
    assert s["augmented"] == s["used"] - s["available"] == int(aux.augmented.sum())
    assert aux.x.min() >= 0 and aux.x.max() <= 1


# ---------------------------------------------------------------- classifier
@pytest.mark.fast
def test_classifier_separates_a_toy_set():
    rng = np.random.default_rng(0)
    easy = rng.normal(-1.5, 0.5, size=(80, 3))
    hard = rng.normal(1.5, 0.5, size=(20, 3))
    f = np.vstack([easy, hard])
    y = np.r_[np.ones(80, int), np.zeros(20, int)]
    clf = train_classifier(f, y, ClassifierConfig(clf_epochs=60), seed=0)
    assert (clf.predict(f) == y).mean() >= 0.95


@pytest.mark.fast
def test_balanced_threshold_hand_made():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    labels = np.array([1, 1, 1, 0, 0])
    t = balanced_threshold(p, labels)
    assert 0.6 < t <= 0.7


@pytest.mark.fast
def test_feature_subsets():
    assert ["+".join(s) for s in feature_subsets(("NF", "AF", "CF"))] == [
        "NF",
        "AF",
        "CF",
        "NF+AF",
        "NF+CF",
        "AF+CF",
        "NF+AF+CF",
    ]


# ---------------------------------------------------------------- methods
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_changes_parameters_without_touching_its_input(name, digits, tiny_original):
    cfg, data, forget = digits
    tc, original = tiny_original
    before = copy.deepcopy(original.state_dict())
    overrides = {"epochs": 1}
    if name == "tmu":
        overrides.update(twin_epochs=1, clf_epochs=5, cf_epochs=1)
    mcfg = method_config(name, "digits", overrides)
    gold = original if METHODS.get(name).uses_gold else None  # a stand-in: the test needs a model, not gold's truth
    task = UnlearnTask(data, cfg, tc, forget, original, seed=0, gold=gold)
    result = METHODS.get(name).run(task, mcfg, CPU, None)
    out = result.model
    after = original.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the input model was mutated"
    changed = [k for k, v in out.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed, "the method left every parameter as it was"
    logits = out(data.x[torch.as_tensor(forget.ids[:8])].float() / 255)
    assert torch.isfinite(logits).all()
    if name == "tmu":
        rep = result.report
        assert len(rep.forget_pred) == len(forget.ids) and set(rep.ablation) == {
            "NF",
            "AF",
            "CF",
            "NF+AF",
            "NF+CF",
            "AF+CF",
            "NF+AF+CF",
        }
    elif METHODS.get(name).display.kind == "method":
        assert result.report is None


@pytest.mark.fast
def test_unknown_method_setting_names_the_valid_ones():
    from tmu_core.errors import TMUError

    with pytest.raises(TMUError, match="valid: .*lr"):
        method_config("finetune", "digits", {"learning_rate": 0.1})


# ---------------------------------------------------------------- the whole pipeline, through the CLI's JSON contract
def test_run_json_contract(tmp_path):
    # every method and control, on 30 training images per class (the contract, not the science)
    others = ("finetune", "neggrad", "randlabel", "badteacher", "scrub", "salun", "random-k", "oracle-labels")
    one_epoch = [flag for m in others for flag in (f"--{m}-epochs", "1")]
    cmd = [sys.executable, "-m", "tmu_core", "run", *TINY_TRAIN, "--seed", "0", "--json", *TINY_TMU, *one_epoch]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TMU_RUNS_DIR": str(tmp_path)},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {
        "run_id",
        "dataset",
        "model",
        "forget_class",
        "forget_class_name",
        "forget_count",
        "seed",
        "device",
        "models",
        "tmu",
        "cost_ratio",
    } <= set(r)
    assert r["forget_class"] == 8 and r["forget_count"] == 20 and r["dataset"] == "digits"
    assert set(r["models"]) == {"original", "gold", *METHODS.names()}  # every method and control by default
    keys = {
        "acc_test",
        "acc_remain",
        "acc_forget",
        "delta",
        "abs_delta",
        "sample_agreement",
        "activation_distance",
        "mia",
        "mia_auc",
        "seconds",
    }
    for name, m in r["models"].items():
        assert keys <= set(m), name
        assert all(isinstance(m[k], float) for k in keys), name
    t = r["tmu"]
    assert set(t["label_accuracy_by_features"]) == {"NF", "AF", "CF", "NF+AF", "NF+CF", "AF+CF", "NF+AF+CF"}
    assert t["pred_easy"] + t["pred_hard"] == 20 and 0 <= t["gold_hard"] <= 20 and t["aux_count"] > 0
    assert {"twin", "nf", "af", "cf", "classifier", "ablation", "unlearn"} <= set(t["stage_seconds"])
    assert r["cost_ratio"] > 0
    fc = t["forecast"]  # a retrain's predicted A_f without gold, its interval, the rule in words
    assert fc["low"] <= fc["predicted_acc_forget"] <= fc["high"] and fc["files"] == 20 and t["decision_rule"]
    assert t["reliability_twin"] and t["reliability_gold"] and 0 <= t["ece_gold"] <= 1
    # the artifacts are in the run folder
    run_dir = tmp_path / r["run_id"]
    import pandas as pd

    table = pd.read_csv(run_dir / "samples.csv")
    assert (table.role == "forget").sum() == 20 and (table.role == "aux").sum() == t["aux_count"]
    assert {"NF", "AF", "CF", "p_easy", "pred_label", "true_label", "pred_gold", "conf_tmu"} <= set(table.columns)
    forget_rows = table[table.role == "forget"]
    assert (forget_rows.true_label == "hard").sum() == t["gold_hard"]
    # every model's A_f and |delta| agree with its stored per-sample predictions (an independent path)
    gold_right = 100 * float((forget_rows.pred_gold == 8).mean())
    for name, m in r["models"].items():
        right = 100 * float((forget_rows[f"pred_{name}"] == 8).mean())
        assert m["acc_forget"] == pytest.approx(right) and m["abs_delta"] == pytest.approx(abs(right - gold_right)), (
            name
        )
    emb = np.load(run_dir / "embeddings.npz")
    assert {"emb_original", "emb_gold", "emb_tmu", "role", "ids"} <= set(emb.files)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "complete"


def test_validate_refuses_nf_k_beyond_the_class_before_training(tmp_path, monkeypatch):
    from tmu_core.errors import TMUError
    from tmu_core.jobs.pipeline import validate

    monkeypatch.setenv("TMU_RUNS_DIR", str(tmp_path))
    cfg = RunConfig(forget=ForgetSpec(forget_class="8", forget_count=100), method_params=(("tmu", (("nf_k", 500),)),))
    with pytest.raises(TMUError, match=r"NF k=500 .* choose 1\.\.\d+"):
        validate(cfg)
    assert not any(tmp_path.iterdir())  # refused before anything was trained or stored


@pytest.mark.fast
def test_hard_rate_estimate_is_a_wilson_lower_bound_counting_sources_once():
    from tmu_core.tmu.classifier import hard_rate_estimate

    labels = np.r_[np.zeros(6, int), np.ones(50, int)]  # 6 hard of 56
    full = hard_rate_estimate(labels)  # n = 56
    few_sources = hard_rate_estimate(labels, n_effective=14)
    assert 0 < few_sources < full < 6 / 56
    # hand computation, z = 1, p = 0.3, n = 100: (0.305 - sqrt(0.0021 + 0.000025)) / 1.01
    assert hard_rate_estimate(np.r_[np.zeros(30, int), np.ones(70, int)]) == pytest.approx(
        (0.3 + 0.005 - np.sqrt(0.21 / 100 + 1 / 40000)) / 1.01, abs=1e-9
    )
    assert hard_rate_estimate(np.ones(10, int)) == 0.0


@pytest.mark.parametrize("held_out", [True, False])
def test_cf_network_never_sees_the_scored_samples_when_held_out(held_out, digits, tiny_original, monkeypatch):
    """CF's from-scratch network trains on part of D_r only by default; the paper's variant adds D_f and D_a."""
    import tmu_core.tmu.method as tmu_mod

    cfg, data, forget = digits
    tc, original = tiny_original
    seen = {}
    real = tmu_mod.curriculum_losses

    def spy(make_model, x_train, y_train, queries, *args, **kwargs):
        seen["x"] = x_train
        seen["queries"] = queries
        return real(make_model, x_train, y_train, queries, *args, **kwargs)

    monkeypatch.setattr(tmu_mod, "curriculum_losses", spy)
    mcfg = method_config(
        "tmu", "digits", {"epochs": 1, "twin_epochs": 1, "clf_epochs": 5, "cf_epochs": 1, "cf_held_out": held_out}
    )
    task = UnlearnTask(data, cfg, tc, forget, original, seed=0)
    METHODS.get("tmu").run(task, mcfg, CPU, None)
    x_train = seen["x"].reshape(len(seen["x"]), -1)
    scored = torch.cat([q[0] for q in seen["queries"]]).reshape(-1, x_train.shape[1])
    # is any scored image (D_a or D_f) among the training images?
    dist = torch.cdist(scored.float(), x_train.float(), compute_mode="donot_use_mm_for_euclid_dist")
    overlap = (dist.min(1).values < 1e-6).sum().item()
    part = int(mcfg.scoring.cf_fraction * len(forget.remain_ids(data)))
    if held_out:
        assert overlap == 0 and len(x_train) == part
    else:
        assert overlap == len(scored) and len(x_train) == part + len(scored)


def test_fit_map_keeps_separated_clusters_apart_and_is_seeded():
    from tmu_core.jobs.embedding import fit_map

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 120))
    labels = np.repeat(np.arange(3), 80)
    x = (centres[labels] + rng.normal(0, 1, (len(labels), 120))).astype(np.float32)
    xy = fit_map(x, seed=0)
    assert xy.shape == (240, 2) and xy.dtype == np.float32
    means = np.stack([xy[labels == k].mean(0) for k in range(3)])
    nearest = np.argmin(((xy[:, None, :] - means[None]) ** 2).sum(-1), 1)
    assert (nearest == labels).mean() == 1.0
    assert np.array_equal(xy, fit_map(x, seed=0))
    import numba  # numba's own decorators: only the UMAP worker process makes them cache by default

    assert numba.njit.__module__.startswith("numba.") and numba.jit.__module__.startswith("numba.")


def test_tmu_forget_term_acts_on_predicted_hard_samples_only(digits, tiny_original, monkeypatch):
    """The unlearning step gets D_r plus the predicted-easy D_f as retain data and only the predicted-hard D_f
    as forget data; the forget term leaves a retain sample's loss untouched."""
    import tmu_core.tmu.method as tmu_mod
    import tmu_core.tmu.step as tmu_step

    cfg, data, forget = digits
    tc, original = tiny_original
    pred = np.ones(len(forget.ids), dtype=np.int64)
    pred[[0, 3, 7]] = 0  # three predicted hard
    seen = {}

    def spy(model, retain, forget_xy, loss_fn, *args, **kwargs):
        seen.update(retain=retain, forget=forget_xy, loss=loss_fn)
        return model

    monkeypatch.setattr(tmu_step, "unlearn_loop", spy)
    task = UnlearnTask(data, cfg, tc, forget, original, seed=0)
    tmu_mod.unlearn(task, pred, method_config("tmu", "digits").unlearn, CPU, None)
    hard_x = data.x[torch.as_tensor(forget.ids[[0, 3, 7]])]
    assert torch.equal(seen["forget"][0], hard_x) and len(seen["forget"][1]) == 3
    retain_x = seen["retain"][0].reshape(len(seen["retain"][0]), -1).float()
    assert len(retain_x) == len(forget.remain_ids(data)) + len(forget.ids) - 3
    # every predicted-easy D_f image is in the retain data, no predicted-hard one is
    dist = torch.cdist(data.x[torch.as_tensor(forget.ids)].reshape(len(forget.ids), -1).float(), retain_x)
    in_retain = (dist.min(1).values == 0).numpy()
    assert in_retain[pred == 1].all() and not in_retain[pred == 0].any()
    # the loss: the forget term is zero when no hard sample is in the batch, so easy D_f gets the retain loss only
    logits = torch.randn(4, 10, requires_grad=True)
    y = torch.tensor([8, 8, 1, 2])
    retain_sum, forget_sum = seen["loss"](logits, y, logits[:0], y[:0], None, None)
    assert float(forget_sum.detach()) == 0.0
    assert float(retain_sum.detach()) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits.detach(), y, reduction="sum"))
    )


# How much one forget sample weighs against one retain sample in each method's loss, on a step of 64 retain and
# 2 forget samples (the shape of a step when |D_f| = 100 is spread over the retain share). Measured by
# differentiating the loop's combination of the two summed losses, then checked against each method's
# documented choice: the TMU paper's NG and RL (and TMU's own step) weigh a forget sample like 32 retain
# samples. SalUn, Bad Teacher and SCRUB run their own steps as their authors' code does (tests below).
EXPECTED_WEIGHT = {
    "finetune": 32.0,
    "neggrad": 32.0,
    "randlabel": 32.0,
    "tmu": 32.0,
    "random_k": 32.0,
    "oracle_labels": 32.0,
}


@pytest.mark.fast
@pytest.mark.parametrize("name", sorted(EXPECTED_WEIGHT))
def test_each_method_weighs_a_forget_sample_as_documented(name):
    from tmu_core.config import flatten
    from tmu_core.unlearn.loop import combine

    weighting = flatten(method_config(name, "cifar10"))["weighting"]
    per_retain = torch.tensor(1.0, requires_grad=True)  # every retain sample's loss
    per_forget = torch.tensor(1.0, requires_grad=True)
    combine(per_retain * 64, per_forget * 2, 64, 2, weighting).backward()
    ratio = (per_forget.grad / 2) / (per_retain.grad / 64)
    assert float(ratio) == pytest.approx(EXPECTED_WEIGHT[name]), (name, weighting)


def test_scrub_runs_max_steps_only_in_its_first_msteps_epochs(digits, tiny_original, monkeypatch):
    import tmu_core.methods.scrub as scrub

    cfg, data, forget = digits
    tc, original = tiny_original
    passes = []
    real = scrub._pass
    monkeypatch.setattr(scrub, "_pass", lambda s, t, o, x, y, *a: (passes.append(len(x)), real(s, t, o, x, y, *a)))
    mcfg = method_config("scrub", "digits", {"epochs": 3, "msteps": 2, "retain_fraction": 0.1})
    scrub.run(UnlearnTask(data, cfg, tc, forget, original, seed=0), mcfg, CPU)
    n_f = len(forget.ids)
    assert [p == n_f for p in passes] == [True, False, True, False, False]  # max, min, max, min, min


def test_salun_updates_only_its_salient_weights(digits, tiny_original):
    from tmu_core.methods.salun import saliency_mask

    cfg, data, forget = digits
    tc, original = tiny_original
    f = torch.as_tensor(forget.ids)
    mask = saliency_mask(original, data.x[f], data.y[f], 0.5, CPU)
    chosen, total = sum(int(m.sum()) for m in mask.values()), sum(m.numel() for m in mask.values())
    assert chosen == int(0.5 * total)  # exactly half, ranked over the whole network
    mcfg = method_config("salun", "digits", {"epochs": 1})
    out = METHODS.get("salun").run(UnlearnTask(data, cfg, tc, forget, original, seed=0), mcfg, CPU).model
    before, after = original.state_dict(), out.state_dict()
    moved = 0
    for name, m in mask.items():
        # a non-salient weight never moves, not even by weight decay (their code puts it back after each step)
        assert torch.equal(after[name][m == 0], before[name][m == 0]), name
        moved += int((after[name][m == 1] != before[name][m == 1]).sum())
    assert moved > 0.9 * chosen


def test_salun_steps_through_relabelled_d_f_then_d_r_in_batches_of_256_as_its_authors_do(
    digits, tiny_original, monkeypatch
):
    """Their CIFAR-10 branch: per epoch, D_f batches with labels drawn over all classes (some the true one),
    then every D_r sample once with its own label; never a batch mixing the two; constant rate; no clipping."""
    import types

    import tmu_core.methods.salun as salun

    cfg, data, forget = digits
    tc, original = tiny_original
    calls = []

    def spy(logits, target, *a, **kw):
        calls.append((len(target), target.clone()))
        return torch.nn.functional.cross_entropy(logits, target, *a, **kw)

    monkeypatch.setattr(salun, "F", types.SimpleNamespace(cross_entropy=spy))
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: pytest.fail("SalUn clips no gradient"))
    mcfg = method_config("salun", "digits", {"epochs": 2})
    assert (mcfg.batch_size, mcfg.lr, mcfg.epochs, mcfg.retain_fraction, mcfg.mask_ratio) == (256, 0.013, 2, 1.0, 0.5)
    salun.run(UnlearnTask(data, cfg, tc, forget, original, seed=0), mcfg, CPU)
    n_f, n_r = len(forget.ids), len(forget.remain_ids(data))
    retain_sizes = [256] * (n_r // 256) + ([n_r % 256] if n_r % 256 > 1 else [])
    # f, r, r, ..., f, r, ... (the saliency mask's own loss is the shared loop module's, not seen here)
    assert [c[0] for c in calls] == ([n_f] + retain_sizes) * 2
    per_epoch = 1 + len(retain_sizes)
    random_labels = torch.cat([calls[0][1], calls[per_epoch][1]])
    k = forget.class_index
    assert 0 < int((random_labels == k).sum()) < len(random_labels) // 4  # over all classes: sometimes the true one
    assert len(set(random_labels.tolist())) == data.num_classes
    assert not torch.equal(calls[0][1], calls[per_epoch][1])  # a fresh draw each step


def test_bad_teacher_gives_every_d_f_sample_the_bad_teachers_target_once_an_epoch(digits, tiny_original, monkeypatch):
    """Their loop: one shuffled pool of a 30% retain sample and all of D_f in batches of 256, the last one
    partial (nothing dropped), Adam, no gradient clipping."""
    import tmu_core.methods.badteacher as bt

    cfg, data, forget = digits
    tc, original = tiny_original
    seen = []
    real = bt.targets
    monkeypatch.setattr(
        bt, "targets", lambda bad, good, xb, f: (seen.append((len(xb), f.clone())), real(bad, good, xb, f))[1]
    )
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: pytest.fail("Bad Teacher clips no gradient"))
    mcfg = method_config("badteacher", "digits", {"epochs": 2})
    assert (mcfg.lr, mcfg.batch_size, mcfg.retain_fraction, mcfg.temperature) == (1e-4, 256, 0.3, 1.0)
    bt.run(UnlearnTask(data, cfg, tc, forget, original, seed=0), mcfg, CPU)
    pool = len(forget.ids) + int(0.3 * len(forget.remain_ids(data)))
    sizes = [256] * (pool // 256) + [pool % 256]
    assert [n for n, _ in seen] == sizes * 2
    per_epoch = len(sizes)
    for epoch in range(2):
        flags = torch.cat([f for _, f in seen[epoch * per_epoch : (epoch + 1) * per_epoch]])
        assert int(flags.sum()) == len(forget.ids)  # every D_f sample once in each epoch
    first = torch.cat([f for _, f in seen[:per_epoch]])
    second = torch.cat([f for _, f in seen[per_epoch:]])
    assert not torch.equal(first, second)  # the pool is shuffled again each epoch


def test_a_tiny_image_folder_runs_with_defaults_and_says_its_evidence_is_thin(tmp_path, monkeypatch):
    """10 images per identity, 5 forgotten: the default NF k = 5 adapts to the 2 samples left (with a note)
    instead of being refused, and the run stores twin fidelity and plain-words warnings."""
    from PIL import Image

    from tmu_core.jobs.pipeline import execute, start

    rng = np.random.default_rng(0)
    for c in ("alice", "bob", "carol"):
        (tmp_path / "faces" / c).mkdir(parents=True)
        base = rng.integers(0, 255, (3,))
        for i in range(10):
            img = np.clip(base + rng.normal(0, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "faces" / c / f"{i}.png")
    monkeypatch.setenv("TMU_RUNS_DIR", str(tmp_path / "runs"))
    cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root=str(tmp_path / "faces"), image_size=16),
        forget=ForgetSpec(forget_class="alice", forget_count=5),
        train=TrainConfig(epochs=2),
        methods=("tmu",),
        method_params=(("tmu", (("epochs", 1), ("twin_epochs", 1), ("clf_epochs", 5))),),
    )
    r = execute(start(cfg))
    fid, warnings = r["tmu"]["twin_fidelity"], " ".join(r["tmu"]["warnings"])
    assert set(fid) == {
        "twin_acc_aux",
        "twin_loss_aux",
        "original_acc_forget",
        "original_loss_forget",
        "twin_epochs",
        "bags",
        "step_choice",  # an image folder's default: the step is chosen on the twin
    }
    assert fid["step_choice"]["chosen"] in fid["step_choice"]["candidates"]
    assert 0 <= fid["twin_acc_aux"] <= 100 and fid["twin_loss_aux"] >= 0
    assert "distinct aux images" in warnings and "--aux-fraction" in warnings
    assert "NF uses k = 2 nearest neighbours instead of 5" in warnings


# ---------------------------------------------------------------- audit-quality options (all off by default)
def _tmu(digits, tiny_original, **flat):
    cfg, data, forget = digits
    tc, original = tiny_original
    mcfg = method_config("tmu", "digits", {"epochs": 1, "twin_epochs": 1, "clf_epochs": 5, "cf_epochs": 1, **flat})
    return METHODS.get("tmu").run(UnlearnTask(data, cfg, tc, forget, original, seed=0), mcfg, CPU, None)


def test_bagged_twins_draw_disjoint_aux_sets_while_the_pool_allows_and_pool_them(digits, tiny_original):
    one = _tmu(digits, tiny_original).report
    three = _tmu(digits, tiny_original, twin_bags=3).report
    n = len(one.aux.x)
    assert len(three.aux.x) == 3 * n and three.twin_fidelity["bags"] == 3
    assert three.aux.sizing["pooled"] == 3 * n and len(three.aux_labels) == 3 * n
    assert torch.equal(three.aux.x[:n], one.aux.x), "the first bag is today's twin"
    assert not torch.equal(three.aux.x[n : 2 * n], one.aux.x), "a later bag is a fresh draw"


def test_a_later_bag_avoids_earlier_images_only_while_the_pool_still_holds_a_full_d_a(digits):
    _, data, forget = digits
    pool = data.class_ids(forget.class_index, pool="aux")
    first = build_aux(data, forget, 0, 4, allow_flip=False, size_scale=0.01)  # a small D_a: the pool holds several
    second = build_aux(data, forget, 1000, 4, allow_flip=False, size_scale=0.01, exclude=first.source_ids)
    assert len(first.x) * 2 <= len(pool) and not set(first.source_ids) & set(second.source_ids)
    full = build_aux(data, forget, 0, 4, allow_flip=False)  # the full Eq. 3 size needs the whole pool: no exclusion
    again = build_aux(data, forget, 1000, 4, allow_flip=False, exclude=full.source_ids)
    assert len(again.x) == len(full.x) and set(again.source_ids) <= set(pool)


def test_twin_fit_match_stops_once_the_twin_fits_d_a_as_the_original_fits_d_f(digits, tiny_original):
    fid = _tmu(digits, tiny_original, twin_fit="match", twin_max_epochs=20).report.twin_fidelity
    assert 0 < fid["twin_epochs"] < 20, "it stopped on the fit, before the epoch cap"
    assert fid["twin_loss_aux"] <= fid["original_loss_forget"]


def test_held_out_features_are_stored_and_used_in_the_chosen_order(digits, tiny_original):
    rep = _tmu(digits, tiny_original, features=("HM", "NF", "HNF")).report
    assert rep.feature_names == ["NF", "AF", "CF", "HNF", "HM"] and rep.features_used == ["HM", "NF", "HNF"]
    cols = rep.forget_columns()
    assert {"NF", "AF", "CF", "HNF", "HM"} <= set(cols) and (cols["HNF"] >= 0).all()
    assert (cols["HM"] < 0).any() or (cols["HM"] > 0).all(), "a margin keeps its sign"
    assert "NF+AF+CF" in rep.ablation  # the paper's Table 4 subsets stay


def test_held_out_features_and_kl_refuse_a_cf_network_that_saw_the_samples():
    from tmu_core.errors import TMUError

    with pytest.raises(TMUError, match="held-out"):
        method_config("tmu", "digits", {"features": ("NF", "HM"), "cf_held_out": False})
    with pytest.raises(TMUError, match="heldout_kl needs"):
        method_config("tmu", "digits", {"mechanism": "heldout_kl", "cf_held_out": False})


@pytest.mark.fast
def test_scaling_per_problem_standardises_each_problem_with_its_own_statistics():
    from tmu_core.tmu.config import FeatureConfig
    from tmu_core.tmu.method import FeatureValues, scaled

    rng = np.random.default_rng(0)
    feats = FeatureValues(("NF", "AF", "CF"), rng.normal(1, 1, (50, 3)) ** 2, rng.normal(3, 2, (40, 3)) ** 2)
    _, f_shared = scaled(feats, FeatureConfig(scale_log=False, scale_clip=100))
    _, f_own = scaled(feats, FeatureConfig(scale_log=False, scale_clip=100, scale_per_problem=True))
    assert np.allclose(f_own.mean(0), 0, atol=1e-6) and not np.allclose(f_shared.mean(0), 0, atol=0.5)


def test_heldout_kl_moves_hard_samples_toward_the_held_out_network(digits, tiny_original):
    """On the predicted-hard samples, the unlearned model's softmax is closer (KL) to the held-out network's than
    the original's was, and closer than where random wrong labels take it."""
    from tmu_core.tmu.method import held_out_network

    cfg, data, forget = digits
    tc, original = tiny_original
    out = _tmu(digits, tiny_original, mechanism="heldout_kl", epochs=1)
    hard = forget.ids[out.report.forget_pred == 0]
    assert 0 < len(hard) < len(forget.ids), "some samples are predicted hard, not all"
    mcfg = method_config("tmu", "digits", {"cf_epochs": 1})  # the held-out network _tmu's run trained (same seed)
    teacher = held_out_network(UnlearnTask(data, cfg, tc, forget, original, seed=0), mcfg.scoring, CPU)
    x = data.x[torch.as_tensor(hard)]
    target = torch.softmax(predict(teacher, x, CPU), 1)

    def kl(model) -> float:
        return float(
            torch.nn.functional.kl_div(torch.log_softmax(predict(model, x, CPU), 1), target, reduction="batchmean")
        )

    randlabel = _tmu(digits, tiny_original, mechanism="randlabel", epochs=1).model
    assert kl(out.model) < 0.8 * kl(original), (kl(out.model), kl(original))
    assert kl(out.model) < kl(randlabel), (kl(out.model), kl(randlabel))


def test_keep_easy_off_leaves_predicted_easy_samples_out_of_the_retain_set(digits, tiny_original, monkeypatch):
    import tmu_core.tmu.step as tmu_mod

    seen = []
    real = tmu_mod.unlearn_loop
    monkeypatch.setattr(
        tmu_mod,
        "unlearn_loop",
        lambda model, retain, *a, **k: seen.append(len(retain[0])) or real(model, retain, *a, **k),
    )
    kept = _tmu(digits, tiny_original).report
    _tmu(digits, tiny_original, keep_easy=False)
    remain = len(digits[2].remain_ids(digits[1]))
    assert seen == [remain + int(kept.forget_pred.sum()), remain]


# ---------------------------------------------------------------- the aligned step's options
@pytest.mark.fast
def test_complement_targets_drop_the_true_class_and_renormalise():
    from tmu_core.tmu.step import complement_targets, soft_ce_sum

    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]]))
    t = complement_targets(logits, torch.tensor([0, 1]), 1.0)
    assert torch.allclose(t, torch.tensor([[0.0, 2 / 3, 1 / 3], [2 / 3, 0.0, 1 / 3]]))
    flat = complement_targets(logits, torch.tensor([0, 1]), 1e6)  # a very high temperature: uniform over the rest
    assert torch.allclose(flat, torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]), atol=1e-4)
    # soft cross-entropy of a one-hot target is the ordinary cross-entropy; empty batch: zero
    y = torch.tensor([2, 0])
    one_hot = torch.nn.functional.one_hot(y, 3).float()
    assert soft_ce_sum(logits, one_hot).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
    )
    assert soft_ce_sum(logits[:0], one_hot[:0]).item() == 0.0


@pytest.mark.fast
def test_salun_forget_passes_keep_the_authors_step_ratio_when_asked():
    from tmu_core.methods.salun import SalUnConfig, forget_passes

    # |D_f| 100, batch 256: one forget step; D_r 4900 (500 per class): 20 retain steps -> round(20 / 9) = 2 passes
    assert forget_passes(SalUnConfig(forget_passes=0), 100, 4900) == 2
    assert forget_passes(SalUnConfig(forget_passes=0), 100, 1300) == 1  # digits: 6 retain steps, already above 1:9
    assert forget_passes(SalUnConfig(forget_passes=0), 100, 45000) == 20  # all of CIFAR-10: 176 retain steps
    assert forget_passes(SalUnConfig(), 100, 45000) == 1  # the default: one pass, as the step count falls out


def test_each_step_option_changes_the_step_and_the_oracle_follows_it(digits, tiny_original, monkeypatch):
    """complement, easy_target twin, distill and saliency each reach the unlearning loop: soft targets, the twin's
    temperature, M_o's softmax on D_r, a weight mask; a control given TMU's settings gets the same step."""
    import tmu_core.tmu.step as tmu_mod

    seen = []
    real = tmu_mod.unlearn_loop
    monkeypatch.setattr(tmu_mod, "unlearn_loop", lambda *a, **k: seen.append((a, k)) or real(*a, **k))
    out = _tmu(digits, tiny_original, mechanism="complement", easy_target="twin", distill=True, saliency=0.3)
    (args, kwargs) = seen[-1]
    (_, tr), (_, tf) = args[1], args[2]
    assert tr.dim() == 2 and tf.dim() == 2, "soft targets for both halves"
    soft, label = tf[:, :-1], tf[:, -1]  # the true label rides in the last column
    assert (label == 8).all(), "each hard sample's own label"
    assert torch.allclose(soft.sum(1), torch.ones(len(tf))) and (soft[:, 8] == 0).all(), "no mass on the true class"
    assert not torch.equal(tr[:10], torch.nn.functional.one_hot(torch.as_tensor(tr[:10].argmax(1)), 10).float())
    mask = kwargs["grad_mask"]
    share = sum(float(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
    assert share == pytest.approx(0.3, abs=0.01)
    temperature = out.report.twin_fidelity["non_member_temperature"]
    assert 0.5 <= temperature <= 20.0
    # the oracle control, given TMU's settings, reuses TMU's temperature and runs the same kind of step
    cfg, data, forget = digits
    tc, original = tiny_original
    ocfg = method_config("oracle_labels", "digits", {}, {"tmu": (("mechanism", "complement"), ("easy_target", "twin"))})
    task = UnlearnTask(data, cfg, tc, forget, original, seed=0, gold=original, earlier={"tmu": out.report})
    from tmu_core.methods.controls import step_temperature

    assert step_temperature(task, ocfg, CPU) == temperature


# ---------------------------------------------------------------- the step chosen on the twin
@pytest.mark.fast
def test_the_configured_step_stays_unless_a_candidate_is_clearly_better_on_the_twin():
    from tmu_core.tmu.step import pick

    def sc(agreement, distance):
        return {"agreement": agreement, "activation_distance": distance}

    assert pick({"configured": sc(90, 0.30), "complement": sc(90, 0.28), "half lr": sc(89, 0.10)}) == "configured"
    assert pick({"configured": sc(90, 0.30), "complement": sc(90, 0.26)}) == "complement"  # 13% nearer
    assert pick({"configured": sc(90, 0.30), "complement": sc(92, 0.40), "half lr": sc(95, 0.50)}) == "half lr"
    assert pick({"configured": sc(90, 0.30), "complement": sc(95, 0.30), "half lr": sc(95, 0.30)}) == "complement"


@pytest.mark.fast
def test_a_candidate_changes_only_what_it_names_and_scales_the_rate():
    from tmu_core.tmu.config import UnlearnConfig
    from tmu_core.tmu.step import CANDIDATES, candidate_config

    base = UnlearnConfig(lr=0.02, mechanism="neggrad", step_choice="twin")
    assert "configured" in CANDIDATES and CANDIDATES["configured"] == {}
    assert candidate_config(base, {}) == base.model_copy(update={"step_choice": "fixed"})
    half = candidate_config(base, CANDIDATES["half lr"])
    assert half.lr == pytest.approx(0.01) and half.mechanism == "neggrad" and half.step_choice == "fixed"
    assert candidate_config(base, CANDIDATES["complement + distill"]).model_dump() == {
        **base.model_dump(),
        "mechanism": "complement",
        "distill": True,
        "step_choice": "fixed",
    }


def test_complement_targets_carry_each_hard_samples_own_label(tiny_original, digits, monkeypatch):
    """Over several classes the forget term checks each hard sample against its own label, not the first class's."""
    import tmu_core.tmu.step as tmu_step
    from tmu_core.tmu.config import UnlearnConfig

    _, data, _ = digits
    _, original = tiny_original
    seen = []
    monkeypatch.setattr(tmu_step, "unlearn_loop", lambda model, retain, forget, *a, **k: seen.append(forget) or model)
    ids = torch.as_tensor([int(np.flatnonzero(data.y.numpy() == c)[0]) for c in (2, 7)])
    x, y = data.x[ids], data.y[ids]
    sd = tmu_step.StepData(x[:0], y[:0], x[:0], y[:0], x, y)
    tmu_step.unlearn_step(original, sd, UnlearnConfig(mechanism="complement"), CPU, num_classes=10, seed=0)
    targets = seen[0][1]
    assert targets[:, -1].long().tolist() == [2, 7]
    assert targets[0, 2] == 0 and targets[1, 7] == 0


def test_the_twin_chooses_the_step_and_the_controls_follow_it(digits, tiny_original, monkeypatch):
    """step_choice twin: every candidate is run on the twin and scored against M_o on D_a; TMU's real step and the
    oracle control use the chosen candidate's settings."""
    import tmu_core.tmu.step as tmu_step
    from tmu_core.methods.controls import chosen_step
    from tmu_core.store.schema import TwinFidelity
    from tmu_core.tmu.step import CANDIDATES, candidate_config

    lrs = []
    real = tmu_step.unlearn_loop
    monkeypatch.setattr(
        tmu_step, "unlearn_loop", lambda m, r, f, loss, c, *a, **k: lrs.append(c.lr) or real(m, r, f, loss, c, *a, **k)
    )
    cfg, data, forget = digits
    tc, original = tiny_original
    mcfg = method_config("tmu", "digits", {"epochs": 1, "twin_epochs": 1, "clf_epochs": 5, "cf_epochs": 1})
    mcfg = mcfg.model_copy(update={"unlearn": mcfg.unlearn.model_copy(update={"step_choice": "twin"})})
    seen = []
    out = METHODS.get("tmu").run(UnlearnTask(data, cfg, tc, forget, original, seed=0), mcfg, CPU, seen.append)
    fractions = [p.fraction for p in seen if p.stage == "tmu:step choice"]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0, "one bar over every candidate"
    choice = out.report.twin_fidelity["step_choice"]
    assert set(choice["candidates"]) == set(CANDIDATES) and choice["chosen"] in CANDIDATES
    for scores in choice["candidates"].values():
        assert 0 <= scores["agreement"] <= 100 and scores["activation_distance"] >= 0 and 0 <= scores["acc_aux"] <= 100
    assert choice["aux_count"] == int(out.report.aux.x.shape[0])  # one twin: every D_a sample
    TwinFidelity.model_validate(json.loads(json.dumps(out.report.twin_fidelity)))  # the stored file's schema
    tmu_cfg = method_config("tmu", "digits", {"epochs": 1, "step_choice": "twin"}).unlearn
    chosen = candidate_config(tmu_cfg, choice["changes"])
    assert len(lrs) == len(CANDIDATES) + 1 and lrs[-1] == pytest.approx(chosen.lr), "the real step used the choice"
    ocfg = method_config("oracle_labels", "digits", {}, {"tmu": (("step_choice", "twin"),)})
    task = UnlearnTask(data, cfg, tc, forget, original, seed=0, gold=original, earlier={"tmu": out.report})
    assert chosen_step(task, ocfg, CPU) == (candidate_config(ocfg, choice["changes"]), choice["chosen"])
    assert chosen_step(task, ocfg.model_copy(update={"step_choice": "fixed"}), CPU) == (
        ocfg.model_copy(update={"step_choice": "fixed"}),
        None,
    )
