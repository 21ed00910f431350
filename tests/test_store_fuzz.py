"""Property-based (Hypothesis): random bytes, truncations and random JSON written into any stored file of a
finished run. `runs`, `execute` and every page's loader either work or name the damage in one line; they
never raise anything else, and the other run in the store stays complete and byte-for-byte intact."""
from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmu_core import store
from tmu_core.cli import main
from tmu_core.errors import TMUError

FILES = ("status.json", "config.json", "metrics.json", "samples.csv", "embeddings.npz", "weights/tmu.pt")
# no subnormal floats: train.py flushes denormals to zero, which Hypothesis refuses to work around
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_subnormal=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def contents(original: bytes):
    """Random bytes, a truncation of the real file, random JSON, or the real JSON with one key's value replaced."""
    import json

    def replaced(pair):
        try:
            obj = json.loads(original)
        except ValueError:
            return original[: len(original) // 2]
        if isinstance(obj, dict) and obj:
            key = sorted(obj)[pair[0] % len(obj)]
            obj[key] = pair[1]
        return json.dumps(obj).encode()

    return st.one_of(st.binary(max_size=64), st.integers(0, max(0, len(original) - 1)).map(lambda n: original[:n]),
                     JSON.map(lambda o: __import__("json").dumps(o).encode()),
                     st.tuples(st.integers(0, 50), JSON).map(replaced))


def load_everything(run: store.Run) -> None:
    """What the pages load from a run (ui.cache, ui.state): each either works or raises TMUError."""
    info = {r.run_id: r for r in store.list_runs()}[run.id]
    if info.state != "complete":
        assert info.error, f"{info.state} without a reason"
        return
    metrics, config = run.metrics(), run.config()
    samples = run.samples()
    from ui import tables

    tables.models_frame(metrics)
    tables.runs_frame([info])
    if "tmu" in metrics:
        tables.ablation_frame(metrics)
        tables.audit_frame(samples, "forget")
        tables.feature_frame(samples, "aux", "truth")
    for model in run.embedding_models():
        run.umap_map(model)
    from ui import cache

    cache.run_data_config(config)  # what the pages read the run's data set from


@pytest.fixture(scope="module")
def store_pair(finished_run, tmp_path_factory):
    src, run_id = finished_run
    root = tmp_path_factory.mktemp("fuzz") / "runs"
    shutil.copytree(src / run_id, root / "keep")
    return src / run_id, root


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FILES), data=st.data())
def test_any_damage_is_named_never_a_crash(name, data, store_pair, monkeypatch, capsys):
    src, root = store_pair
    monkeypatch.setenv("TMU_RUNS_DIR", str(root))
    shutil.rmtree(root / "bad", ignore_errors=True)
    shutil.copytree(src, root / "bad")
    keep = {p: p.read_bytes() for p in (root / "keep").rglob("*") if p.is_file()}
    (root / "bad" / name).write_bytes(data.draw(contents((src / name).read_bytes())))
    run = store.open_run("bad")
    try:
        load_everything(run)
    except TMUError as exc:
        assert "\n" not in str(exc)
    assert main(["runs"]) == 0
    code = main(["execute", "bad"])  # complete: refused; damaged: named; otherwise it is resumed
    err = capsys.readouterr().err
    assert code in (0, 2) and "unexpected" not in err, err
    assert {p: p.read_bytes() for p in (root / "keep").rglob("*") if p.is_file()} == keep
    assert store.open_run("keep").status()["state"] == "complete"


@pytest.mark.parametrize("cfg", [{}, {"forget": {}, "train": {}}])
def test_a_config_without_its_data_section_is_named_damaged(cfg, tmp_path):
    """config.json reading `{}` (found by the fuzz test above): reading the run names the damage instead of
    taking the default data set (and the pages' data loader raising KeyError)."""
    run = store.Run.create("no-data", cfg, tmp_path)
    with pytest.raises(TMUError, match=r"config.json in run no-data.* is damaged.*data"):
        run.config()
