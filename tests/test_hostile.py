"""Hostile files and names: a pickle that would run code is refused (weights load with weights_only=True),
run ids and names cannot lead out of the runs directory, and the dashboard is local-only by default."""
from __future__ import annotations

import io
import pickle
import tomllib

import pytest
import torch

from clitools import ROOT, default_config
from tmu_core import store
from tmu_core.config import DataConfig, TrainConfig
from tmu_core.errors import TMUError


class Payload:
    """Unpickling this runs code: it would create `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _hostile_files(tmp_path):
    marker = tmp_path / "pwned.txt"
    zipped = tmp_path / "zipped.pt"
    torch.save({"w": torch.zeros(2), "evil": Payload(marker)}, zipped)  # torch's zip format
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"w": Payload(marker)}))  # a bare pickle
    return marker, [zipped, legacy]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker, files = _hostile_files(tmp_path)
    for path in files:
        with pytest.raises(TMUError, match="not loaded") as exc:
            store.load_state(path)
        assert path.name in str(exc.value)
    assert not marker.exists(), "the payload ran"


def test_a_hostile_file_in_a_run_or_the_model_cache_is_never_executed(tmp_path, runs_dir):
    from tmu_core.data import load_dataset
    from tmu_core.references import train_cached

    marker, (zipped, _) = _hostile_files(tmp_path)
    run = store.Run.create("victim", default_config())
    run.save_weights("tmu", {"w": torch.zeros(1)})
    run.weights_path("tmu").write_bytes(zipped.read_bytes())
    with pytest.raises(TMUError):
        run.load_weights("tmu")
    # the same file planted as a cached original model: refused and retrained, never unpickled with code
    data = load_dataset(DataConfig(train_per_class=10), seed=0)
    cfg = TrainConfig(epochs=1)
    first = train_cached("original", data, DataConfig(train_per_class=10), cfg, data.train_ids, 0, torch.device("cpu"))
    store.model_cache_file(first.key).write_bytes(zipped.read_bytes())
    again = train_cached("original", data, DataConfig(train_per_class=10), cfg, data.train_ids, 0, torch.device("cpu"))
    assert not again.cached and not marker.exists()


def test_weights_must_be_a_dict_of_tensors(tmp_path):
    path = tmp_path / "odd.pt"
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1), "n": 3}, buf)  # loadable with weights_only, but not a state dict
    path.write_bytes(buf.getvalue())
    with pytest.raises(TMUError, match="state dict of tensors"):
        store.load_state(path)


@pytest.mark.parametrize("bad", ["../x", "..", "a/../../b", "a/b", "/etc", ".hidden", "-flag", "x" * 129, "a\\b",
                                 "run\x00id", ""])
def test_run_ids_that_could_leave_the_runs_dir_are_refused(bad, runs_dir):
    with pytest.raises(TMUError, match="not a valid run id"):
        store.Run(bad)
    with pytest.raises(TMUError):
        store.open_run(bad)


def test_weight_names_cannot_escape_the_run(runs_dir):
    run = store.Run.create("w", default_config())
    with pytest.raises(TMUError):
        run.save_weights("../../escaped", {"w": torch.zeros(1)})
    assert not list(runs_dir.parent.rglob("escaped*"))


def test_run_names_are_made_safe(runs_dir):
    for hint in ("../../etc/passwd", "/abs/path", "..", "a b/c\\d", "\x00"):
        run = store.Run.create(hint, default_config())
        assert run.dir.parent == runs_dir and run.dir.is_dir()
        assert ".." not in run.id and "/" not in run.id
    written = list(runs_dir.parent.rglob("config.json"))
    assert len(written) == 5 and all(p.parent.parent == runs_dir for p in written)


def test_a_run_folder_linking_out_of_the_store_is_not_opened(tmp_path, runs_dir):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "status.json").write_text('{"state": "complete"}')
    (outside / "config.json").write_text("{}")
    runs_dir.mkdir(exist_ok=True)
    (runs_dir / "sneaky").symlink_to(outside, target_is_directory=True)
    with pytest.raises(TMUError, match="outside"):
        store.open_run("sneaky")
    assert store.list_runs() == []


def test_the_dashboard_binds_to_localhost_and_keeps_xsrf_protection():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = cfg["server"]
    assert server["address"] in ("127.0.0.1", "localhost")
    assert server.get("enableXsrfProtection", True) is True
    assert 0 < server.get("maxUploadSize", 200) <= 200
