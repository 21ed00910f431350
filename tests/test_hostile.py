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


@pytest.mark.parametrize(
    "bad", ["../x", "..", "a/../../b", "a/b", "/etc", ".hidden", "-flag", "x" * 129, "a\\b", "run\x00id", ""]
)
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


# ---------------------------------------------------------------- locks, cancel files, cached NaN, text
def _tiny_cached_model():
    from tmu_core.data import load_dataset
    from tmu_core.references import train_cached

    data_cfg, cfg = DataConfig(train_per_class=10), TrainConfig(epochs=1, batch_size=32)
    data = load_dataset(data_cfg, seed=0)
    return lambda: train_cached("original", data, data_cfg, cfg, data.train_ids, 0, torch.device("cpu"))


def test_a_cached_model_with_nan_weights_is_retrained(runs_dir):
    """A NaN in a cached model made every later run with its key fail 'lower the learning rate'."""
    train = _tiny_cached_model()
    first = train()
    state = store.load_state(store.model_cache_file(first.key))
    next(v for v in state.values() if v.is_floating_point()).fill_(float("nan"))
    store.save_state(store.model_cache_file(first.key), state)
    again = train()
    assert not again.cached
    assert all(
        bool(torch.isfinite(v).all())
        for v in store.load_state(store.model_cache_file(first.key)).values()
        if v.is_floating_point()
    )


@pytest.mark.parametrize("kind", ["folder", "mode 000"])
def test_a_cache_lock_that_cannot_be_used_is_one_line(kind, runs_dir, monkeypatch):
    import errno
    import os

    from tmu_core.store.paths import model_lock_file

    key = "original-digits-small_cnn-x"
    path = model_lock_file(key)
    if kind == "folder":
        path.mkdir()
    else:  # what a mode-000 lock file does to a user who is not root (root may open anything)
        path.touch(mode=0o000)
        real_open = os.open

        def denied(p, *a, **k):
            if str(p) == str(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))
            return real_open(p, *a, **k)

        monkeypatch.setattr(os, "open", denied)
    with pytest.raises(TMUError, match="lock"):
        with store.model_lock(key):
            pass


def test_a_lock_held_too_long_is_one_line_naming_what_to_check(runs_dir, monkeypatch):
    from filelock import FileLock

    from tmu_core.store.paths import model_lock_file

    monkeypatch.setenv("TMU_LOCK_TIMEOUT", "0.2")
    with FileLock(str(model_lock_file("k"))):  # another process building the model
        import threading

        errors = []
        t = threading.Thread(target=lambda: errors.append(pytest.raises(TMUError, store.model_lock("k").__enter__)))
        t.start()
        t.join(30)
    assert not t.is_alive(), "the wait for the lock had no limit"
    assert "TMU_LOCK_TIMEOUT" in str(errors[0].value) and "tmu_core runs" in str(errors[0].value)


def test_a_folder_in_place_of_the_cancel_file_is_one_line(runs_dir, capsys):
    from tmu_core.cli import main

    run = store.Run.create("cancelled", default_config())
    run.set_status(state="cancelled")
    (run.dir / "cancel").mkdir()
    assert not run.cancel_requested()
    assert main(["execute", run.id]) == 2
    err = capsys.readouterr().err
    assert "cancel" in err and "not a file" in err and len(err.strip().splitlines()) == 1, err


def test_a_name_with_a_newline_cannot_print_a_line_of_its_own():
    exc = TMUError("cannot read image /data/x\nerror: everything is fine\x1b[2J.png")
    assert str(exc) == "cannot read image /data/x\\nerror: everything is fine\\x1b[2J.png"


def test_pages_show_stored_text_as_text(finished_run, runs_dir, monkeypatch):
    """A class name `![b](http://host/beacon.png)` in metrics.json made four pages fetch an outside URL."""
    import json
    import shutil

    from streamlit.testing.v1 import AppTest

    src, run_id = finished_run
    shutil.copytree(src / run_id, runs_dir / run_id)
    path = runs_dir / run_id / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["forget_class_name"] = "![b](http://host/beacon.png)"
    path.write_text(json.dumps(metrics))
    for page in ("run", "demo", "audit", "alignment"):
        at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
        at.session_state["run_id"] = run_id
        at.session_state["demo_source"] = "selected"  # the guided demo opens the bundled demo run by default
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown = [el.value for el in [*at.markdown, *at.caption] if "beacon" in str(el.value)]
        assert shown, f"{page}: the class name is not shown"
        assert all("![b](" not in text for text in shown), f"{page} renders the stored name as Markdown: {shown}"


def test_pages_say_damaged_for_files_that_pass_the_old_schema(finished_run, runs_dir):
    """NaN in metrics.json (ValueError on Run, Guided demo, Alignment) and a sweep results.json of the wrong shape
    (KeyError on Alignment, which opens the newest sweep by default): an error or warning box, no exception."""
    import json
    import shutil

    from streamlit.testing.v1 import AppTest

    src, run_id = finished_run
    shutil.copytree(src / run_id, runs_dir / run_id)
    path = runs_dir / run_id / "metrics.json"
    path.write_text(path.read_text().replace('"abs_delta": ', '"abs_delta": NaN, "was": ', 1))
    sweep = store.Sweep("hand-made")
    sweep.dir.mkdir(parents=True)
    (sweep.dir / "results.json").write_text(json.dumps({"results": [{"run_id": "x", "models": {}}]}))
    for page in ("run", "demo", "alignment"):
        at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
        at.session_state["run_id"] = run_id
        at.session_state["demo_source"] = "selected"  # the guided demo opens the bundled demo run by default
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        said = " ".join(str(el.value) for el in [*at.error, *at.warning]).replace("\\", "")  # shown as text: escaped
        assert "damaged" in said, (page, said)
    assert "results.json of sweep hand-made is damaged" in said


CSV_FORMULAS = [
    '=HYPERLINK("http://evil/","x")',
    "=cmd|' /C calc'!A0",
    "=1+2.png",
    "+1+1",
    "-1+1",
    "@SUM(A1)",
    "\t=x",
    "\r=x",
]


@pytest.mark.fast
def test_csv_cells_a_spreadsheet_would_run_are_neutralised(tmp_path, runs_dir):
    """Every text cell (and column name) starting with = + - @ tab or CR gets a ' prefix; numbers stay numbers.
    A run's tables (audit.csv, samples.csv) go through the store's one CSV writer."""
    import pandas as pd

    df = pd.DataFrame({"path": CSV_FORMULAS, "n": range(len(CSV_FORMULAS)), "x": [-1.5] * len(CSV_FORMULAS)})
    df["class"] = ["-3", "1e-3", "-inf", "cat", "dog", "=a", "b", "c"]
    run = store.Run.create("csv", default_config())
    run.save_table(df, store.AUDIT)
    back = pd.read_csv(run.dir / store.AUDIT, keep_default_na=False)
    assert back["path"].tolist() == ["'" + c for c in CSV_FORMULAS]
    assert back["class"].tolist() == ["-3", "1e-3", "-inf", "cat", "dog", "'=a", "b", "c"]  # numbers as they were
    assert back["n"].tolist() == list(range(len(CSV_FORMULAS))) and (back["x"] == -1.5).all()
    assert store.csv_text(pd.DataFrame({"=evil": [1]})).startswith("'=evil")


@pytest.mark.fast
def test_every_csv_the_project_writes_goes_through_the_safe_writer():
    """No module writes a CSV itself: a DataFrame's to_csv or the csv module's writers appear only in the store's
    one function (store.csv_text / write_csv)."""
    import re

    allowed = ROOT / "tmu_core" / "store" / "io.py"
    offenders = []
    for folder in ("tmu_core", "ui", "pages", "benchmarks"):
        for f in (ROOT / folder).rglob("*.py"):
            text = f.read_text()
            if f != allowed and re.search(r"\.to_csv\(|csv\.writer\(|csv\.DictWriter\(", text):
                offenders.append(str(f.relative_to(ROOT)))
    for f in [ROOT / "app.py"]:
        if ".to_csv(" in f.read_text():
            offenders.append(f.name)
    assert offenders == [], offenders


def _your_model_entry():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "forget_set.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _uploads(runs_dir):
    folder = runs_dir / "_cache" / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_your_model_entry_reads_only_the_folders_the_operator_names(runs_dir, tmp_path, monkeypatch):
    """A typed server path outside the run store (and TMU_DASHBOARD_FOLDERS) is refused in one line, whatever
    it is; inside an allowed folder, a system file given as forget list is named by line, never shown; user text
    in the error box is escaped, never rendered as Markdown."""
    monkeypatch.delenv("TMU_DASHBOARD_FOLDERS", raising=False)
    at = _your_model_entry()
    at.text_input(key="own_data_root").set_value("/etc")
    at.text_input(key="own_original_weights").set_value("/etc/hostname")
    at.text_input(key="own_forget_list").set_value("/etc/passwd")
    at.button(key="own_launch").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "outside the folders this dashboard reads" in errors[0], errors
    assert "TMU\\_DASHBOARD\\_FOLDERS" in errors[0] and "root:" not in errors[0]
    # an allowed folder: the path is read, and a bad one quoted as text (the image link escaped, not rendered)
    monkeypatch.setenv("TMU_DASHBOARD_FOLDERS", str(tmp_path))
    hostile = tmp_path / "![p](http:127.0.0.1:9999:x.png) :x:"
    at = _your_model_entry()
    at.text_input(key="own_data_root").set_value(str(hostile))
    at.text_input(key="own_original_weights").set_value(str(tmp_path / "W.pt"))
    at.button(key="own_launch").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "does not exist" in errors[0], errors
    assert "!\\[p\\](http:\u200b127" in errors[0] and ":x:" not in errors[0]


def test_uploads_are_limited_before_they_are_kept_and_deleted_when_refused(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TMU_DASHBOARD_FOLDERS", str(tmp_path))
    at = _your_model_entry()
    big = b"a/0.png\n" * ((16 << 20) // 8 + 1)  # over the forget list's 16 MB
    up = [u for u in at.file_uploader if "forget list" in u.label][0]
    up.set_value(("big.txt", big, "text/plain"))
    at.run()
    assert any("more than the 16 MB" in e.value for e in at.error), [e.value for e in at.error]
    assert _uploads(runs_dir) == []  # never written
    at = _your_model_entry()
    up = [u for u in at.file_uploader if "forget list" in u.label][0]
    up.set_value(("F.txt", b"root:x:0:0:root:/root:/bin/bash\n", "text/plain"))
    at.run()
    assert len(_uploads(runs_dir)) == 1
    at.text_input(key="own_data_root").set_value(str(tmp_path / "missing"))
    at.text_input(key="own_original_weights").set_value(str(tmp_path / "W.pt"))
    at.button(key="own_launch").click().run()
    assert any("does not exist" in e.value for e in at.error), [e.value for e in at.error]
    assert _uploads(runs_dir) == []  # the refused launch's upload is deleted


@pytest.mark.fast
def test_old_uploads_expire(runs_dir, monkeypatch):
    import os
    import time

    old, _ = store.uploads.keep(b"old", "old.txt", 100, "forget list")
    new, _ = store.uploads.keep(b"new", "new.txt", 100, "forget list")
    past = time.time() - 8 * 86400
    os.utime(old, (past, past))
    assert store.uploads.expire() == [old] and new.exists()
    monkeypatch.setenv("TMU_UPLOAD_DAYS", "0")
    os.utime(new, (past, past))
    store.uploads.keep(b"x", "x.txt", 100, "forget list")  # every upload expires the old ones first
    assert not new.exists()
    with pytest.raises(TMUError, match="more than"):
        store.uploads.keep(b"x" * 101, "y.txt", 100, "forget list")


@pytest.mark.fast
def test_dashboard_paths_stay_inside_the_named_folders(runs_dir, tmp_path, monkeypatch):
    """Inside the run store or a TMU_DASHBOARD_FOLDERS entry: read; elsewhere, or through a link that leads out,
    or by `..`: refused in one line."""
    import os

    monkeypatch.delenv("TMU_DASHBOARD_FOLDERS", raising=False)
    runs_dir.mkdir(parents=True, exist_ok=True)
    store.uploads.check_readable(str(runs_dir / "x" / "W.pt"), "original weights")
    (runs_dir / "out").symlink_to("/etc")
    for bad in ("/etc/passwd", str(runs_dir / "out" / "passwd"), str(runs_dir / ".." / ".." / "etc")):
        with pytest.raises(TMUError, match="outside the folders this dashboard reads"):
            store.uploads.check_readable(bad, "forget list")
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("TMU_DASHBOARD_FOLDERS", f"{a}{os.pathsep}{b}")
    store.uploads.check_readable(str(b / "data"), "data folder")
    with pytest.raises(TMUError, match="outside"):
        store.uploads.check_readable(str(tmp_path / "c"), "data folder")
