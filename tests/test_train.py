"""The training engine: a short run lowers the loss, reports progress per epoch, is seeded (identical
weights twice on CPU), and its schedules and augmentation do what their docstrings say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tmu_core.config import DataConfig, TrainConfig
from tmu_core.data import load_dataset
from tmu_core.errors import TMUError
from tmu_core.models import build_model
from tmu_core.train import accuracy, augment, fit, generator, make_schedule, pick_device, predict, seed_everything

pytestmark = pytest.mark.fast  # `make test-fast`

CPU = torch.device("cpu")
RECIPE = TrainConfig(epochs=3, batch_size=32, lr=0.05)


@pytest.fixture(scope="module")
def small():
    data = load_dataset(DataConfig(train_per_class=20), seed=0)
    ids = torch.as_tensor(data.train_ids)
    return data, data.x[ids], data.y[ids]


def _train(small, seed=0, progress=None):
    data, x, y = small
    seed_everything(seed)
    net = build_model("small_cnn", 1, 10, 8, data.mean, data.std)
    return net, fit(net, x, y, RECIPE, CPU, seed=seed, progress=progress)


def test_short_training_lowers_the_loss_and_reports_each_epoch(small):
    reports = []
    net, out = _train(small, progress=reports.append)
    hist = out["history"]
    assert len(hist) == 3 and out["epochs"] == 3
    assert hist[0] < math.log(10) + 0.5, "10 classes start near ln 10"
    assert hist[-1] < 0.7 * hist[0]
    assert [r.fraction for r in reports] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(r.stage == "train" for r in reports)
    assert not net.training, "fit leaves the model in eval mode"
    data, x, y = small
    assert accuracy(net, x, y, CPU) > 30.0  # 3 epochs on 200 digits; chance is 10


def test_training_is_deterministic_on_cpu(small):
    a, _ = _train(small, seed=3)
    b, _ = _train(small, seed=3)
    c, _ = _train(small, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_should_stop_is_called_after_each_epoch(small):
    data, x, y = small
    calls = []

    def stop():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    net = build_model("small_cnn", 1, 10, 8)
    with pytest.raises(KeyboardInterrupt):
        fit(net, x, y, RECIPE, CPU, should_stop=stop)
    assert len(calls) == 2


def test_done_when_is_asked_every_few_steps_in_train_mode_and_ends_training(small):
    """fit(done_when=..., check_every=k): asked after every k optimizer steps, with one optimizer throughout;
    True ends training (mid-epoch too) and the steps taken are reported."""
    data, x, y = small  # 200 samples, batch 32: 7 steps per epoch
    net = build_model("small_cnn", 1, 10, 8)
    calls = []

    def done():
        calls.append(net.training)
        return len(calls) == 5

    out = fit(net, x, y, RECIPE, CPU, done_when=done, check_every=2)
    assert out["steps"] == 10 and out["steps_per_epoch"] == 7 and len(out["history"]) == 2  # stopped in epoch 2
    assert out["epochs"] == 2  # the epochs run, not the 3 asked for
    assert not net.training
    never = fit(build_model("small_cnn", 1, 10, 8), x, y, RECIPE, CPU, done_when=lambda: False, check_every=3)
    assert never["steps"] == 21 and len(never["history"]) == 3 and never["epochs"] == 3


def test_predict_and_accuracy_shapes(small):
    data, x, y = small
    net = build_model("small_cnn", 1, 10, 8)
    assert predict(net, x[:5], CPU).shape == (5, 10)
    assert predict(net, x[:5], CPU, batch=2, what="embed").shape == (5, 256)
    assert np.isnan(accuracy(net, x[:0], y[:0], CPU))


def test_schedules_follow_their_formulas():
    p = torch.nn.Parameter(torch.zeros(1))

    def lrs(kind):
        opt = torch.optim.SGD([p], lr=1.0)
        sched = make_schedule(opt, kind, 100)
        out = []
        for _ in range(100):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    cos = lrs("cosine")
    assert (
        cos[0] == pytest.approx(1.0)
        and cos[50] == pytest.approx(0.5)
        and cos[99] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    )
    step = lrs("step")
    assert step[49] == 1.0 and step[50] == pytest.approx(0.1) and step[75] == pytest.approx(0.01)  # /10 twice
    assert set(lrs("constant")) == {1.0}


def test_augment_keeps_shape_and_range_and_none_is_identity():
    x = torch.rand(16, 3, 32, 32)
    assert augment(x, "none", generator(0)) is x
    for mode in ("flip", "crop_flip"):
        out = augment(x, mode, generator(0))
        assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
        assert torch.equal(out, augment(x, mode, generator(0))), "seeded by the generator"
    flipped = augment(x, "flip", generator(0))
    for i in range(16):  # every image is either itself or its mirror
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


def test_device_choice():
    assert pick_device("cpu") == CPU
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TMUError, match="no CUDA GPU"):
            pick_device("cuda")
    else:
        n = torch.cuda.device_count()
        assert pick_device("cuda") == torch.device("cuda") and pick_device("cuda:0") == torch.device("cuda:0")
        with pytest.raises(TMUError, match=f"cuda:0..cuda:{n - 1}"):
            pick_device(f"cuda:{n}")


def _first_conv(model: torch.nn.Module) -> torch.Tensor:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).weight.detach().clone()


def test_gold_models_start_from_their_own_initial_weights(runs_dir, monkeypatch):
    """Gold is a retrain from scratch: through the real path (original_and_gold, extra_golds -> train_cached) the
    first conv's weights at the moment training starts differ between the original and every gold, and
    between golds. Fails if gold_seed(seed, 0) == seed, as it was when both called seed_everything(seed)."""
    import tmu_core.references as refs
    from tmu_core.config import ForgetSpec
    from tmu_core.data import resolve_forget

    cfg = DataConfig(train_per_class=20)
    data = load_dataset(cfg, seed=0)
    forget = resolve_forget(data, ForgetSpec(forget_class="8", forget_count=5), 0)
    at_init = {}

    def record_init(model, x, y, tc, device, *, seed, stage, **kwargs):  # stands for training: look, train nothing
        at_init[(stage, seed)] = _first_conv(model)
        return {}

    monkeypatch.setattr(refs, "fit", record_init)
    tc = TrainConfig(epochs=1)
    original, gold = refs.original_and_gold(data, cfg, forget, tc, 7, CPU)
    refs.extra_golds(data, cfg, forget, tc, 7, 3, CPU)
    assert sorted(at_init) == [("gold", refs.gold_seed(7, k)) for k in range(3)] + [("original", 7)]
    keys = list(at_init)
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            assert not torch.allclose(at_init[keys[i]], at_init[keys[j]]), f"{keys[i]} and {keys[j]} start alike"
    # the stored gold is the model that started from gold's own seed (nothing trained: still its init)
    assert torch.equal(_first_conv(gold.model), at_init[("gold", refs.gold_seed(7, 0))])
    assert not torch.equal(_first_conv(gold.model), _first_conv(original.model))


def test_a_run_trains_its_gold_from_gold_seed(runs_dir, monkeypatch):
    """The pipeline's own reference step (what `run` and `sweep` use) seeds gold with gold_seed, like
    original_and_gold: a run's gold never shares the original's initial weights."""
    import types

    import tmu_core.references as refs
    from tmu_core.config import ForgetSpec
    from tmu_core.data import resolve_forget
    from tmu_core.jobs import sources

    cfg = types.SimpleNamespace(data=DataConfig(train_per_class=20), train=TrainConfig(epochs=1), seed=3, gold_seeds=1)
    data = load_dataset(cfg.data, seed=0)
    forget = resolve_forget(data, ForgetSpec(forget_class="8", forget_count=5), 0)
    seeds = {}
    monkeypatch.setattr(
        refs, "fit", lambda model, x, y, tc, device, *, seed, stage, **kw: seeds.setdefault(stage, seed)
    )
    run = types.SimpleNamespace(cancel_requested=lambda: False)
    writer = types.SimpleNamespace(done=lambda *a, **k: None, begin=lambda *a, **k: None, cached=lambda *a, **k: None)
    inputs = sources.Inputs(data, sources.Request(forget, (forget,)), 0.0)
    sources.Native().references(run, cfg, inputs, CPU, writer, None)
    assert seeds == {"original": 3, "gold": refs.gold_seed(3, 0)} and refs.gold_seed(3, 0) != 3


def test_the_model_cache_keys_a_data_folder_by_its_absolute_path(tmp_path, monkeypatch):
    """`tmu run --data-root ../x` and a sweep's runs (given the absolute path) share cached models; the same
    relative path typed in another working folder names other data and gets another key."""
    from tmu_core.references import cache_key

    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data").mkdir(parents=True)
    tc, ids = TrainConfig(), np.arange(5)

    def key(root: str) -> str:
        return cache_key("gold", DataConfig(dataset="imagefolder", data_root=root), tc, 0, ids)

    monkeypatch.chdir(tmp_path / "a")
    relative_in_a = key("data")
    assert relative_in_a == key(str(tmp_path / "a" / "data")) == key("./data/")
    monkeypatch.chdir(tmp_path / "b")
    assert key("data") != relative_in_a
    assert key("") == cache_key("gold", DataConfig(dataset="imagefolder"), tc, 0, ids)  # no folder: as before
