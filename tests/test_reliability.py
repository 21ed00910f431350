"""Hostile stored files, odd images, diverging recipes, double execution and input mistakes: each is named in
one line (exit 2 on the CLI), nothing else in the store is lost, no page raises."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from clitools import ROOT, default_config
from PIL import Image

from tmu_core import store
from tmu_core.cli import main
from tmu_core.errors import Diverged, TMUError


def copy_run(finished_run, runs_dir, name: str | None = None) -> store.Run:
    """A copy of the finished run, with its cached original and gold models: a test that executes it again then
    trains only its methods, as a rerun in the run's own store would."""
    src, run_id = finished_run
    shutil.copytree(src / run_id, runs_dir / (name or run_id))
    if (src / "_cache" / "models").is_dir():
        shutil.copytree(src / "_cache" / "models", runs_dir / "_cache" / "models", dirs_exist_ok=True)
    return store.open_run(name or run_id)


def states(capsys) -> dict[str, str]:
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    return {line.split()[0]: line for line in lines}


def call(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


# ---------------------------------------------------------------- 1, 2: damaged status and wrong shapes
WRONG = {
    "status.json": ['{"state":"running","pid":99999999999999999999999}', '{"state":"complete","progress":"x"}', "[]"],
    "config.json": ['{"data": "digits"}', '{"seed": "zero"}', '{"train": {"epochs": "three"}}', "[1, 2]"],
    "metrics.json": ["{}", '{"models": {}}', "[]"],
    "samples.csv": ["id,role\n1,forget\n", None],  # None: the real file truncated
    "embeddings.npz": [None],
}


CASES = [
    pytest.param(name, text, id=f"{name}-{i}") for name, contents in WRONG.items() for i, text in enumerate(contents)
]


@pytest.mark.parametrize("name,text", CASES)
def test_a_file_of_the_wrong_shape_marks_its_run_damaged_and_others_list(name, text, finished_run, runs_dir, capsys):
    copy_run(finished_run, runs_dir, "good")
    bad = copy_run(finished_run, runs_dir, "bad")
    path = bad.dir / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3] if text is None else text.encode())
    rows = states(capsys)
    assert "complete" in rows["good"]
    assert "damaged" in rows["bad"] and name in rows["bad"], rows["bad"]


def test_a_folder_in_place_of_status_json_is_damage(finished_run, runs_dir, capsys):
    copy_run(finished_run, runs_dir, "good")
    (runs_dir / "r2" / "status.json").mkdir(parents=True)
    rows = states(capsys)
    assert "damaged" in rows["r2"] and "complete" in rows["good"]


def test_damaged_cache_metadata_is_retrained(runs_dir):
    from tmu_core.config import DataConfig, TrainConfig
    from tmu_core.data import load_dataset
    from tmu_core.references import train_cached

    cfg, data_cfg = TrainConfig(epochs=1, batch_size=32), DataConfig(train_per_class=10)
    data = load_dataset(data_cfg, seed=0)
    first = train_cached("original", data, data_cfg, cfg, data.train_ids, 0, torch.device("cpu"))
    store.model_meta_file(first.key).write_text("[]")
    again = train_cached("original", data, data_cfg, cfg, data.train_ids, 0, torch.device("cpu"))
    assert not again.cached
    assert json.loads(store.model_meta_file(first.key).read_text())["seconds"] >= 0


# ---------------------------------------------------------------- 3: image modes
def _save(path, im):
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def test_sixteen_bit_and_other_modes_decode_to_their_grey_level(tmp_path, runs_dir):
    from tmu_core.config import DataConfig
    from tmu_core.data import load_raw

    grey16 = Image.fromarray(np.full((8, 8), 127 * 257, dtype=np.uint16))
    for i in range(3):
        _save(tmp_path / "sixteen" / "a" / f"{i}.png", grey16)
        _save(tmp_path / "sixteen" / "b" / f"{i}.png", grey16)
    raw = load_raw(DataConfig(dataset="imagefolder", data_root=str(tmp_path / "sixteen"), image_size=8))
    assert raw.x_train.shape[1] == 1 and abs(float(raw.x_train.float().mean()) - 127) < 1

    from tmu_core.data.sources import eight_bit

    assert np.asarray(eight_bit(Image.fromarray(np.full((4, 4), 0.5, np.float32), "F"))).mean() == 128
    assert np.asarray(eight_bit(Image.fromarray(np.full((4, 4), 1000, np.int32), "I"))).mean() == 4  # 16-bit range
    cmyk = eight_bit(Image.new("CMYK", (4, 4), (0, 0, 0, 0)))
    assert cmyk.mode == "RGB" and np.asarray(cmyk).mean() == 255
    pal = Image.new("P", (4, 4))
    pal.putpalette([255, 0, 0] * 256)
    pal.info["transparency"] = 0  # every pixel transparent: black, not red
    assert np.asarray(eight_bit(pal)).max() == 0


def test_a_decompression_bomb_is_one_line(tmp_path, runs_dir, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 100x100 image then counts as a bomb
    for c in ("a", "b"):
        _save(tmp_path / "bomb" / c / "x.png", Image.new("L", (100, 100)))
    code, err = call(["train", "--dataset", "imagefolder", "--data-root", str(tmp_path / "bomb")], capsys)
    assert code == 2 and "cannot read image" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- 4: diverging recipes
def test_the_loops_name_what_diverged():
    from tmu_core.config import TrainConfig
    from tmu_core.models import build_model
    from tmu_core.train import fit
    from tmu_core.unlearn.loop import LoopConfig, unlearn_loop

    model = build_model("small_cnn", 1, 10, 8, (0.5,), (0.25,))
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 10

    def nan_loss(lr, yr, lf, tf, xr, xf):
        return (lr.sum() * float("nan"), lf.sum() * 0.0)

    with pytest.raises(Diverged, match="neggrad diverged"):
        unlearn_loop(
            model, (x, y), (x[:0], y[:0]), nan_loss, LoopConfig(epochs=1), torch.device("cpu"), stage="neggrad"
        )
    with pytest.raises(Diverged, match="gold model diverged"):
        fit(model, x * float("inf"), y, TrainConfig(epochs=1, batch_size=8), torch.device("cpu"), stage="gold")


def test_a_diverging_method_keeps_the_others(runs_dir, monkeypatch):

    from apptools import tiny_config

    from tmu_core.config import ForgetSpec
    from tmu_core.evaluate import paper_tables
    from tmu_core.jobs.pipeline import execute, start
    from tmu_core.methods import finetune

    real = finetune.ce_sum
    monkeypatch.setattr(finetune, "ce_sum", lambda logits, y: real(logits, y) * float("nan"))
    cfg = tiny_config(ForgetSpec(forget_class="8", forget_count=10), "div").model_copy(
        update={"methods": ("finetune", "neggrad")}
    )
    run = start(cfg)
    result = execute(run)
    assert run.status()["state"] == "complete"
    assert "finetune" in result["diverged"] and "finetune diverged" in result["diverged"]["finetune"]
    assert "finetune" not in result["models"] and "neggrad" in result["models"]
    assert [r.state for r in store.list_runs()] == ["complete"]
    assert "NG |Δ|" in " ".join(paper_tables.tables([run.metrics()])["table1"].columns)


# ---------------------------------------------------------------- 6, 7, 10: input mistakes
@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--forget-class", "⁸"], "unknown class '⁸'"),
        (["--forget-class=--8"], "unknown class '--8'"),
        (["--forget-ids", "99999999999999999999999"], "far beyond any data set's size"),
        (["--seed", "99999999999999999999"], "seed must be at most 4294967295 (got 99999999999999999999)"),
        (["--dataset", "imagefolder", "--data-root", "~nosuchuser/x"], "no such user"),
        (["--forget-count", "10", "--forget-fraction", "0.5"], "give only one of"),
        (["--tmu-features", "NF", "NF"], "features listed twice"),
        (["--mechanism", "neggrad", "--tmu-mechanism", "randlabel"], "disagree"),
    ],
)
def test_input_mistakes_are_one_line_and_leave_no_run(argv, needle, runs_dir, capsys):
    code, err = call(["run", "--train-per-class", "30", "--epochs", "1", "--methods", "tmu", *argv], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if not p.name.startswith("_")]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_leaves_no_run(runs_dir, capsys):
    code, err = call(["run", "--device", "cuda", "--methods", "finetune"], capsys)
    assert code == 2 and "no CUDA GPU" in err
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if not p.name.startswith("_")]


def test_a_full_disk_is_one_line(runs_dir, monkeypatch, capsys):
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, err = call(["run", "--train-per-class", "30", "--forget-count", "5", "--methods", "finetune"], capsys)
    assert code == 2 and "No space left" in err and len(err.strip().splitlines()) == 1, err


def test_a_broken_pipe_exits_quietly(finished_run, runs_dir):
    for i in range(400):  # enough rows to outgrow the pipe's buffer
        (runs_dir / f"r{i:03d}").mkdir(parents=True)
    env = {**__import__("os").environ, "TMU_RUNS_DIR": str(runs_dir)}
    proc = subprocess.run(
        f"{sys.executable} -m tmu_core runs | head -1",
        shell=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stderr == "" and len(proc.stdout.splitlines()) == 1


def test_names_ids_cancel_and_execute(finished_run, runs_dir, capsys):
    run = store.Run.create("v1..2", default_config())
    assert run.id.startswith("v1.2-")
    with pytest.raises(TMUError, match="not a valid run id"):
        store.check_run_id("abc\n")
    done = copy_run(finished_run, runs_dir)
    code, err = call(["cancel", done.id], capsys)
    assert code == 2 and "complete" in err and not done.cancel_requested()


# ---------------------------------------------------------------- 8, 9: one executor, safe error.log
def test_a_second_executor_is_refused(finished_run, runs_dir, capsys):
    run = copy_run(finished_run, runs_dir)
    run.set_status(state="interrupted")
    before = (run.dir / "status.json").read_bytes()
    with run.executing():  # another process executing it
        code, err = call(["execute", run.id], capsys)
    assert code == 2 and "already being executed" in err
    assert (run.dir / "status.json").read_bytes() == before


def test_execute_prints_its_result(finished_run, runs_dir, capsys):
    run = copy_run(finished_run, runs_dir)
    run.set_status(state="interrupted")
    assert main(["execute", run.id]) == 0
    out = capsys.readouterr().out
    assert run.id in out and "gold" in out and "finetune" in out


def test_error_log_and_run_log_do_not_follow_links(tmp_path, runs_dir):
    from tmu_core.jobs.launch import spawn

    victim = tmp_path / "victim"
    victim.write_text("keep")
    run = store.Run.create("links", default_config())
    (run.dir / "error.log").symlink_to(victim)
    run.write_error_log("Traceback ...")
    assert victim.read_text() == "keep" and not (run.dir / "error.log").is_symlink()
    (run.dir / "run.log").symlink_to(victim)
    with pytest.raises(TMUError):
        spawn(["runs"], run.log_path())
    assert victim.read_text() == "keep"


# ---------------------------------------------------------------- ids, waits, pipes, big images
def test_two_sweeps_never_share_a_folder(runs_dir):
    first = store.Sweep.claim("same", exact=False)
    first.save_results({"sweep_id": "same", "results": []})
    assert store.Sweep.claim("same", exact=False).id == "same-2"  # a default id that collides: a new id
    with pytest.raises(TMUError, match="sweep 'same' already exists .*choose another --sweep-id"):
        store.Sweep.claim("same", exact=True)  # an id the user chose: refused
    assert store.Sweep("same").results() == {"sweep_id": "same", "results": []}
    # the dashboard reserves its folder (two launches in one second), and the sweep process then claims it
    a, b = store.Sweep.reserve("sweep-digits-20260101-000000"), store.Sweep.reserve("sweep-digits-20260101-000000")
    assert (a.id, b.id) == ("sweep-digits-20260101-000000", "sweep-digits-20260101-000000-2")
    assert store.Sweep.claim(b.id, exact=True).id == b.id


def test_a_sweep_that_wrote_nothing_gives_its_id_back(runs_dir):
    sweep = store.Sweep.claim("retry", exact=True)
    sweep.release()
    assert store.Sweep.claim("retry", exact=True).id == "retry"


def test_a_full_disk_at_run_creation_leaves_no_folder(runs_dir, monkeypatch):
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TMUError, match="No space left"):
        store.Run.create("full", default_config())
    assert [p.name for p in runs_dir.iterdir() if not p.name.startswith("_")] == []


def test_a_closed_stderr_does_not_fail_the_run(runs_dir):
    """`run ... 2>&1 | head -1`: the progress lines met a closed pipe and the run failed with BrokenPipeError."""
    import os

    from clitools import TINY_METHODS, TINY_TRAIN

    env = {**os.environ, "TMU_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = " ".join([sys.executable, "-m", "tmu_core", "run", *TINY_TRAIN, *TINY_METHODS, "2>&1", "|", "head", "-1"])
    subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    (info,) = store.list_runs(runs_dir)
    assert info.state == "complete", info.error


def test_an_unreachable_ray_address_is_one_line_not_a_hang(runs_dir):
    from clitools import TINY_METHODS, TINY_TRAIN, cli_env

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tmu_core",
            "sweep",
            *TINY_TRAIN,
            *TINY_METHODS,
            "--classes",
            "1",
            "--executor",
            "ray",
            "--ray-address",
            "127.0.0.1:1",
            "--quiet",
        ],
        cwd=ROOT,
        env=cli_env(runs_dir, TMU_RAY_CONNECT_TIMEOUT="3"),
        capture_output=True,
        text=True,
        timeout=120,
    )  # before: still retrying after 500 s
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in proc.stderr and "ray start --head" in proc.stderr


def test_big_images_are_checked_before_decoding_and_decoded_reduced(tmp_path, runs_dir, monkeypatch):
    """Six 9400x9400 PNGs took 2.95 GB: all were kept at full size before resizing. Now the size is read from the
    header first (too many pixels: refused unread), a JPEG is decoded at a reduced scale and any other large
    image is reduced at once, so only the resized images are kept."""
    from tmu_core.data import sources

    for c in ("a", "b"):
        _save(tmp_path / "big" / c / "x.png", Image.new("RGB", (400, 300), (200, 0, 0)))
        _save(tmp_path / "big" / c / "y.jpg", Image.new("RGB", (640, 480), (0, 200, 0)))
    opened = []
    from PIL import JpegImagePlugin

    real_reduce, real_draft = Image.Image.reduce, JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(
        Image.Image, "reduce", lambda im, f, *a: opened.append(("reduce", im.size, f)) or real_reduce(im, f, *a)
    )
    monkeypatch.setattr(
        JpegImagePlugin.JpegImageFile,
        "draft",  # records the size the JPEG is decoded at
        lambda im, m, s: (real_draft(im, m, s), opened.append(("draft", im.size)))[0],
    )
    small = sources._small_image(tmp_path / "big" / "a" / "x.png", 32)
    assert small.size == (32, 32) and ("reduce", (400, 300), 4) in opened
    jpeg = sources._small_image(tmp_path / "big" / "a" / "y.jpg", 32)
    assert jpeg.size == (32, 32) and np.asarray(jpeg)[..., 1].mean() > 150 and ("draft", (160, 120)) in opened
    monkeypatch.setattr(sources, "MAX_IMAGE_PIXELS", 100_000)  # 400x300 = 120,000 pixels: refused unread
    monkeypatch.setattr(Image.Image, "load", lambda im: pytest.fail("decoded an image over the limit"))
    with pytest.raises(TMUError, match=r"is 400x300 pixels.*shrink or remove it"):
        sources._decode(sources._list_images(tmp_path / "big"), ["a", "b"], 32)


def test_the_sidebar_selects_either_of_two_runs_with_one_label(finished_run, runs_dir):
    """Two runs with one label (e.g. from `--seeds 0 0`): the sidebar could select only one, and on the Run page
    a sidebar choice was undone at once by the row the run table remembered."""
    from apptools import router_test

    first, second = copy_run(finished_run, runs_dir, "twin-a"), copy_run(finished_run, runs_dir, "twin-b")
    at = router_test(120)  # app.py as a server runs it once st.navigation has run: pages keep the sidebar
    at.session_state["run_id"] = first.id
    at.run()
    at.switch_page("pages/run.py").run()
    for target in (second.id, first.id, second.id):
        at.selectbox(key="sidebar_run").select(target).run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.session_state["run_id"] == target
        at.run()  # the next rerun (the Run page's table runs after the sidebar) keeps the choice
        assert at.session_state["run_id"] == target
