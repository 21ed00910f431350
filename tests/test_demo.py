"""The bundled teaching demo (tmu_core/demo_bundle, tmu_core.demo): it installs into an empty run store as a complete run
that shows the phenomenon, and seeds the model cache so running it again trains neither reference model."""

from __future__ import annotations

import time

import pytest

from tmu_core import demo, store
from tmu_core.data import load_dataset, resolve_forget
from tmu_core.jobs.preview import cached_models
from tmu_core.references import reference_key


def test_bundle_is_present_and_small():
    assert demo.bundled(), "regenerate it: python -m tmu_core.demo"
    size = sum(f.stat().st_size for f in demo.BUNDLE.rglob("*") if f.is_file())
    assert size < 4_000_000  # two float32 small_cnn state dicts (0.9 MB each) are most of it


def test_bundled_run_installs_complete_and_loads(runs_dir):
    t0 = time.perf_counter()
    run = demo.install()
    assert time.perf_counter() - t0 < 5.0
    (info,) = [r for r in store.list_runs() if r.run_id == demo.RUN_ID]
    assert info.state == "complete", info.error  # metrics, samples and activations all pass their checks
    metrics = run.metrics()
    assert set(metrics["models"]) == {"original", "gold", *demo.METHODS}
    assert len(run.samples()) > metrics["forget_count"]  # D_f and the twin's D_a
    assert set(run.embedding_models()) == {"original", "gold", "tmu"}
    for m in demo.UMAP_MODELS:  # the Embeddings page shows the maps at once, no UMAP to compute
        assert run.umap_version(m) is not None
    assert demo.install().id == run.id  # installing again leaves the complete copy alone


def test_demo_shows_the_phenomenon():
    """Gold forgets a visible share of D_f (15-40%) and the methods differ, unlike the old 100-of-class-8 demo
    where gold kept 97% and every method sat at |Δ| 3."""
    import json

    metrics = json.loads((demo.bundle_root() / demo.RUN_ID / "metrics.json").read_text())
    gold_af = metrics["models"]["gold"]["acc_forget"]
    assert 60.0 <= gold_af <= 85.0
    deltas = {m: v["abs_delta"] for m, v in metrics["models"].items() if m in demo.METHODS}
    assert len({round(d) for d in deltas.values()}) >= 3
    assert metrics["models"]["original"]["abs_delta"] > deltas["tmu"]  # TMU moves towards gold


def test_bundle_matches_the_current_recipe_and_cache_keys(runs_dir):
    """The bundled models are stored under the keys a run of the demo's config computes now (the pipeline trains
    the run's gold from gold_seed(seed, 0)). Fails when the recipe, the split or the key changes: regenerate the
    bundle with `python -m tmu_core.demo`."""
    cfg = demo.config()
    data = load_dataset(cfg.data, cfg.seed)
    forget = resolve_forget(data, cfg.forget, cfg.seed)
    expected = {
        reference_key("original", cfg.data, cfg.train, cfg.seed, data.train_ids),
        reference_key("gold", cfg.data, cfg.train, cfg.seed, forget.remain_ids(data)),
    }
    assert {p.stem for p in (demo.BUNDLE / "models").glob("*.pt")} == expected
    demo.install()
    assert cached_models(data, cfg.data, cfg.train, cfg.seed, forget.ids) == {"original": True, "gold": True}


def test_a_damaged_copy_is_installed_again(runs_dir):
    run = demo.install()
    (run.dir / "metrics.json").write_text("{not json")
    again = demo.install()
    assert again.status()["state"] == "complete" and not again.damage()


def test_missing_bundle_is_one_clear_error(runs_dir, tmp_path):
    from tmu_core.errors import TMUError

    with pytest.raises(TMUError, match="python -m tmu_core.demo"):
        demo.install(bundle=tmp_path / "nothing")
