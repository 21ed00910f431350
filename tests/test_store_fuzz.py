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
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_subnormal=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


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

    return st.one_of(
        st.binary(max_size=64),
        st.integers(0, max(0, len(original) - 1)).map(lambda n: original[:n]),
        JSON.map(lambda o: __import__("json").dumps(o).encode()),
        st.tuples(st.integers(0, 50), JSON).map(replaced),
    )


def load_everything(run: store.Run) -> None:
    """What the pages load from a run (ui.cache, ui.state): each either works or raises TMUError."""
    info = {r.run_id: r for r in store.list_runs()}[run.id]
    if info.state != "complete":
        assert info.error, f"{info.state} without a reason"
        return
    metrics, config = run.metrics_model(), run.config()  # the pages read metrics.json as the typed model
    samples = run.samples()
    from ui import tables

    tables.models_frame(metrics)
    tables.runs_frame([info])
    if tables.tmu_summary(metrics) is not None:
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


# ---------------------------------------------------------------- files that are not what they seem
def _copy(store_pair, name: str) -> store.Run:
    src, root = store_pair
    shutil.rmtree(root / name, ignore_errors=True)
    shutil.copytree(src, root / name)
    return store.Run(name, root)


def _within(seconds: float, fn):
    """fn() in a thread; fails when it has not returned after `seconds` (a blocked open would hang the test)."""
    import threading

    out = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked (a FIFO opened for reading waits for a writer)"
    return out[0]


@pytest.mark.parametrize(
    "name", ["status.json", "metrics.json", "samples.csv", "embeddings.npz", "config.json", "weights/tmu.pt"]
)
def test_a_fifo_in_place_of_a_stored_file_is_damage_not_a_hang(name, store_pair, runs_dir):
    """A FIFO opened for reading blocks until a writer comes: `runs` (and the dashboard's listing) hung forever."""
    import os

    src, _ = store_pair
    shutil.copytree(src, runs_dir / "keep")
    shutil.copytree(src, runs_dir / "fifo")
    (runs_dir / "fifo" / name).unlink()
    os.mkfifo(runs_dir / "fifo" / name)
    rows = {r.run_id: r for r in _within(60, store.list_runs)}
    assert rows["keep"].state == "complete"
    assert rows["fifo"].state == "damaged" and name.split("/")[-1] in rows["fifo"].error, rows["fifo"]


def test_a_fifo_in_place_of_a_run_log_is_refused_not_waited_on(runs_dir):
    import os

    from tmu_core.jobs.launch import spawn

    run = store.Run.create("fifo-log", {})
    os.mkfifo(run.log_path())

    def start():
        try:
            spawn(["tmu_core", "runs"], run.log_path())
        except TMUError as exc:
            return str(exc)

    assert "cannot start a background process" in _within(30, start)


def test_a_fifo_in_place_of_a_log_reads_as_no_log(store_pair):
    import os

    run = _copy(store_pair, "fifolog")
    os.mkfifo(run.dir / "run.log")
    assert _within(10, run.log_tail) == ""


def test_compressed_zeros_are_refused_before_they_are_decompressed(store_pair, monkeypatch):
    """3 GB of zeros compress to 3 MB; here the limit is lowered to 2 MB and the zeros are 4 MB."""
    import numpy as np

    from tmu_core.store import io as store_io

    run = _copy(store_pair, "bomb")
    arrays = run.embeddings()
    arrays["emb_tmu"] = np.zeros((len(arrays["ids"]), 4_000_000 // 4 // len(arrays["ids"]) + 1), np.float32)
    run.save_embeddings(**arrays)
    assert (run.dir / "embeddings.npz").stat().st_size < 1 << 20  # the file itself is under the limit
    monkeypatch.setattr(store_io, "ARRAYS_LIMIT", 2 << 20)
    with pytest.raises(TMUError, match="embeddings.npz in run bomb is damaged .*would take over 2 MB"):
        run.embeddings()
    assert "would take over" in (run.damage() or "")


def test_an_array_header_claiming_gigabytes_is_refused_without_allocating(store_pair, tmp_path):
    """A member whose header declares 10^10 floats but holds none: sizes come from the headers, not the zip."""
    import zipfile

    import numpy as np

    path = tmp_path / "liar.npz"
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**10,)}
    with zipfile.ZipFile(path, "w") as zf, zf.open("emb_x.npy", "w") as member:
        np.lib.format.write_array_header_1_0(member, header)
    with pytest.raises(TMUError, match="would take over"):
        store.load_arrays(path)


def _edit_json(run: store.Run, name: str, change) -> None:
    import json

    obj = json.loads((run.dir / name).read_text())
    change(obj)
    (run.dir / name).write_text(json.dumps(obj))


@pytest.mark.parametrize("field", ["abs_delta", "acc_forget", "seconds"])
def test_a_metric_that_is_not_a_finite_number_is_damage(field, store_pair):
    run = _copy(store_pair, "nan")
    _edit_json(run, "metrics.json", lambda m: m["models"]["tmu"].__setitem__(field, float("nan")))
    with pytest.raises(TMUError, match=f"metrics.json in run nan is damaged \\(models.tmu.{field}"):
        run.metrics()


def test_sample_ids_outside_the_data_are_damage(store_pair):
    """samples.csv with every id shifted by 100000 indexed past the data set (IndexError on four pages)."""
    import pandas as pd

    run = _copy(store_pair, "shifted")
    df = pd.read_csv(run.dir / "samples.csv")
    df["id"] += 100_000
    df["source_id"] += 100_000
    df.to_csv(run.dir / "samples.csv", index=False)
    assert "differ from those in the run's embeddings" in run.damage()
    with pytest.raises(
        TMUError, match="samples.csv in run shifted is damaged \\(id outside the data set's sample ids 0..299"
    ):
        run.check_samples_fit(df, 300)  # what the dashboard checks once it has the data (its images are indexed)


@pytest.mark.parametrize("text", ['{"results":[{"run_id":"x","models":{}}]}', '{"sweep_id":"s","results":"all"}', "[]"])
def test_a_sweep_results_file_is_checked_like_metrics(text, runs_dir):
    sweep = store.Sweep("hand-made")
    sweep.dir.mkdir(parents=True)
    (sweep.dir / "results.json").write_text(text)
    with pytest.raises(TMUError, match="results.json of sweep hand-made is damaged"):
        sweep.results()


def test_a_sweep_results_file_with_a_nan_metric_is_damage(store_pair, runs_dir):
    import json

    src, _ = store_pair
    metrics = json.loads((src / "metrics.json").read_text())
    metrics["models"]["tmu"]["abs_delta"] = float("nan")
    sweep = store.Sweep("nan-sweep")
    sweep.dir.mkdir(parents=True)
    (sweep.dir / "results.json").write_text(json.dumps({"sweep_id": "nan-sweep", "results": [metrics]}))
    with pytest.raises(TMUError, match=r"results.json of sweep nan-sweep is damaged \(results.0.models.tmu.abs_delta"):
        sweep.results()


def test_stored_names_that_could_carry_markdown_are_damage(store_pair):
    run = _copy(store_pair, "names")
    _edit_json(run, "metrics.json", lambda m: m["models"].__setitem__("![b](http://x/y.png)", m["models"]["tmu"]))
    with pytest.raises(TMUError, match="metrics.json in run names is damaged"):
        run.metrics()


def test_a_umap_map_of_the_wrong_shape_is_computed_again(store_pair):
    import numpy as np

    run = _copy(store_pair, "umap")
    run.save_umap_map("tmu", ids=np.arange(3), role=np.array(["forget"] * 3), label=np.zeros(3, int), xy=np.zeros(3))
    assert run.umap_map("tmu") is None  # before: returned, and the Embeddings page raised IndexError on xy[:, 0]
    run.save_umap_map(
        "tmu", ids=np.arange(3), role=np.array(["forget"] * 3), label=np.zeros(3, int), xy=np.zeros((3, 2), np.float32)
    )
    assert run.umap_map("tmu")["xy"].shape == (3, 2)
