"""The user's model file: its formats (state dict, safetensors, torchvision:/timm: names, TorchScript, torch.export),
the opt-in and sandboxed child for formats that are code, size checks before reading, time limits on the model's
code, one clear line for each way a model file can be wrong, and the model-fit check before a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from clitools import assert_one_line_error, start_cli
from owntools import digits_folder, forget_list, train_plain

TINY = ["--tmu-twin-epochs", "1", "--tmu-clf-epochs", "10", "--tmu-cf-epochs", "1", "--tmu-epochs", "1"]
RUN = ["run", "--dataset", "imagefolder", "--gold", "none", "--device", "cpu", "--json", *TINY]


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """Digits as 8x8 PNGs, small_cnn trained on train/ by a plain loop (state dict W.pt), a 30-path forget list."""
    base = tmp_path_factory.mktemp("files")
    root = digits_folder(base / "digits")
    net = train_plain(root)
    torch.save(net.state_dict(), base / "W.pt")
    forget_list(root, base / "F.txt")
    return {"base": base, "root": root, "net": net}


def _data(own, size=8):
    from tmu_core.config import DataConfig, OwnModelConfig
    from tmu_core.ownmodel.layout import load_user_data

    return load_user_data(
        DataConfig(dataset="imagefolder", data_root=str(own["root"]), image_size=size),
        OwnModelConfig(original_weights=str(own["base"] / "W.pt")),
    )


def _script(module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def _run(runs_dir, own, weights, *extra, timeout=600):
    b = own["base"]
    args = [
        *RUN,
        "--data-root",
        str(own["root"]),
        "--original-weights",
        str(weights),
        "--forget-list",
        str(b / "F.txt"),
    ]
    proc = start_cli([*args, *extra], runs_dir)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _folders(runs_dir):
    return [p for p in runs_dir.iterdir() if not p.name.startswith("_")] if runs_dir.exists() else []


class Plain(torch.nn.Module):
    """forward only (no embed): the user's network as a TorchScript or export module."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


# ---------------------------------------------------------------- formats, read from headers alone


@pytest.mark.fast
def test_formats_are_told_apart_by_content(own, tmp_path):
    from safetensors.torch import save_file

    from tmu_core.ownmodel.files import sniff

    save_file({k: v.contiguous() for k, v in own["net"].state_dict().items()}, tmp_path / "w.bin")
    _script(Plain(own["net"]), tmp_path / "m.pt")
    program = torch.export.export(Plain(own["net"]).eval(), (torch.rand(2, 1, 8, 8),))
    torch.export.save(program, str(tmp_path / "p.bin"))
    assert sniff(own["base"] / "W.pt") == "state_dict"
    assert sniff(tmp_path / "w.bin") == "safetensors"
    assert sniff(tmp_path / "m.pt") == "torchscript"
    assert sniff(tmp_path / "p.bin") == "export"


@pytest.mark.fast
def test_a_compressed_bomb_is_refused_before_it_is_read(own, tmp_path, monkeypatch):
    """A small zip declaring 256 MiB of tensors: refused from its directory; torch.load is never called."""
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.weights import load_model

    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("bomb/data.pkl", b"\x80\x02}q\x00.")
        with z.open("bomb/data/0", "w", force_zip64=True) as f:
            chunk = bytes(2**20)
            for _ in range(256):
                f.write(chunk)
    assert path.stat().st_size < 2 * 2**20

    def never(*a, **k):
        raise AssertionError("torch.load was called on a bomb")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(TMUError, match="inflate to 256.0 MiB.*refused before decompressing"):
        load_model(str(path), "small_cnn", _data(own))


@pytest.mark.fast
def test_a_safetensors_header_declaring_huge_tensors_is_refused(own, tmp_path):
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.weights import load_model

    header = json.dumps({"head.weight": {"dtype": "F32", "shape": [2**28], "data_offsets": [0, 2**30]}}).encode()
    path = tmp_path / "huge.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(64))
    with pytest.raises(TMUError, match="declares 1.0 GiB of tensors.*architecture's parameters take"):
        load_model(str(path), "small_cnn", _data(own))


@pytest.mark.fast
@pytest.mark.parametrize(
    "case,needles",
    [
        ("int_keys", ["not parameter names", "0"]),
        ("complex", ["complex", "complex64", "imaginary part"]),
    ],
)
def test_state_dict_defects_are_one_line(own, tmp_path, case, needles):
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.weights import load_model

    state = own["net"].state_dict()
    if case == "int_keys":
        state = {i: v for i, v in enumerate(state.values())}
    else:
        state = {**state, "head.weight": state["head.weight"].to(torch.complex64)}
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(TMUError) as err:
        load_model(str(tmp_path / "w.pt"), "small_cnn", _data(own))
    assert all(n in str(err.value) for n in needles), str(err.value)


@pytest.mark.fast
def test_a_missing_weights_path_is_named_as_the_weights_file(own):
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.weights import load_model

    for text in ("~nosuchuser12345/W.pt", str(own["base"] / "missing.pt")):
        with pytest.raises(TMUError) as err:
            load_model(text, "small_cnn", _data(own))
        assert "original weights" in str(err.value) and "data root" not in str(err.value)


@pytest.mark.fast
def test_torchvision_architecture_by_name(own, tmp_path):
    """A torchvision resnet18 state dict (first convolution made 1-channel, as for greyscale training) loads with
    --model torchvision:resnet18 and the class count of the data; saved again it has the same keys."""
    import torchvision

    from tmu_core.ownmodel.weights import load_model, unlearned_file

    r = torchvision.models.resnet18(num_classes=10)
    r.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(r.state_dict(), tmp_path / "r.pt")
    data = _data(own)
    loaded = load_model(str(tmp_path / "r.pt"), "torchvision:resnet18", data)
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(loaded.model(x), r.eval()(x), atol=1e-5)
    assert loaded.model.embed(x).shape == (3, 512)
    blob, suffix, note = unlearned_file(loaded, loaded.model)
    assert suffix == "pt" and note is None
    import io

    assert set(torch.load(io.BytesIO(blob), weights_only=True)) == set(r.state_dict())


@pytest.mark.fast
def test_timm_missing_says_pip_install(monkeypatch):
    import sys

    from tmu_core.errors import TMUError
    from tmu_core.models import check_model

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(TMUError, match="pip install timm"):
        check_model("timm:resnet18")
    with pytest.raises(TMUError, match="torchvision has no classification model 'resnet'"):
        check_model("torchvision:resnet")


# ---------------------------------------------------------------- one line for each way a model can fail


class Raw(torch.nn.Module):
    """The network without its normalisation layer: it wants (x - 0.5) / 0.25, not [0, 1] pixels."""

    def __init__(self, net):
        super().__init__()
        self.body, self.head = net.body, net.head

    def forward(self, x):
        return self.head(self.body(x))


class Shifted(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).roll(1, dims=1)


class IntLogits(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).argmax(1)


class TupleOut(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x


class DictOut(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return {"logits": self.net(x)}


class FlatEmbed(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)

    @torch.jit.export
    def embed(self, x):
        return self.net(x).sum(1)


class Raises(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        if x.shape[0] > 0:
            raise RuntimeError("my model wants a batch of faces")
        return self.net(x)


@pytest.mark.fast
@pytest.mark.parametrize(
    "cls,needles",
    [
        (IntLogits, ["returns int64 values", "not predicted labels", "[64, 10]"]),
        (TupleOut, ["returns a tuple of 2 values", "not one tensor"]),
        (DictOut, ["returns a dict of 1 values (logits)"]),
        (FlatEmbed, ["embed() gives [64]", "[64, features]"]),
        (Raises, ["raised", "my model wants a batch of faces", "[64, 1, 8, 8]"]),
    ],
)
def test_model_failures_name_the_model_error(own, tmp_path, monkeypatch, cls, needles):
    """Each gets one line that names what the model did and what was expected, not generic --image-size advice."""
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.weights import load_model

    monkeypatch.setattr("tmu_core.ownmodel.sandbox._entered", True)  # loaded here as the sandboxed child would
    path = _script(cls(own["net"]), tmp_path / "m.ts")
    with pytest.raises(TMUError) as err:
        load_model(str(path), "small_cnn", _data(own), allow_code=True)
    text = str(err.value)
    assert all(n in text for n in needles), text
    assert "\n" not in text and "--image-size" not in text


@pytest.mark.fast
def test_frozen_and_parameter_free_models_say_what_to_give(own, tmp_path, monkeypatch):
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.weights import load_model

    monkeypatch.setattr("tmu_core.ownmodel.sandbox._entered", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.script(Plain(own["net"]).eval()))
        torch.jit.save(frozen, str(tmp_path / "frozen.ts"))
    with pytest.raises(TMUError, match="no trainable parameters.*deployment format.*torch.jit.freeze"):
        load_model(str(tmp_path / "frozen.ts"), "small_cnn", _data(own), allow_code=True)


# ---------------------------------------------------------------- the model-fit check


@pytest.mark.fast
def test_no_environment_makes_this_process_read_code(own, tmp_path, monkeypatch):
    """Only a process that limited itself (sandbox.enter) reads a model that is code: an environment variable that
    once marked the child (or any other) leaves the file unread here, the opt-in given or not."""
    from tmu_core.ownmodel import sandbox
    from tmu_core.ownmodel.weights import load_model

    monkeypatch.setenv("TMU_SANDBOXED", "1")
    monkeypatch.setenv(sandbox.ENV_ALLOW, "1")
    path = _script(Plain(own["net"]), tmp_path / "m.ts")
    loaded = load_model(str(path), "small_cnn", _data(own), allow_code=True)
    assert not sandbox.inside() and loaded.model is None and loaded.format == "torchscript"
    from tmu_core.ownmodel.weights import _load_code

    with pytest.raises(RuntimeError, match="only in a sandboxed child"):  # the loader itself refuses, called directly
        _load_code(path, "torchscript", _data(own), None, None, "original weights")


@pytest.mark.fast
def test_native_size_is_the_default(own):
    from tmu_core.config import DataConfig, OwnModelConfig, RunConfig
    from tmu_core.ownmodel.fit import native_size, with_native_size

    cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root=str(own["root"])),
        own=OwnModelConfig(original_weights=str(own["base"] / "W.pt")),
    )
    assert cfg.data.image_size == 32 and native_size(cfg.data, cfg.own) == 8
    assert with_native_size(cfg).data.image_size == 8


@pytest.mark.fast
def test_class_order_is_named_and_accept_poor_fit_runs_anyway(own, monkeypatch):
    """A model whose outputs are in another order than the sorted folders: the refusal names the class order;
    with accept_poor_fit the same measurement becomes a note."""
    from tmu_core.config import DataConfig, OwnModelConfig, RunConfig
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel import fit
    from tmu_core.ownmodel.weights import Loaded

    data = _data(own)
    cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root=str(own["root"]), image_size=8),
        own=OwnModelConfig(original_weights="W.pt"),
    )
    loaded = Loaded(Shifted(own["net"]), "state_dict", "W.pt", arch="small_cnn")
    with pytest.raises(TMUError, match="at chance.*class order: images of class '0' mostly get output 1") as err:
        fit.check(loaded, data, cfg, 8, "original weights")
    assert "--accept-poor-fit" in str(err.value)
    accepted = cfg.model_copy(update={"own": cfg.own.model_copy(update={"accept_poor_fit": True})})
    result, note = fit.check(loaded, data, accepted, 8, "original weights")
    assert result.train < 30 and "model-fit check" in note and "class order" in note


def test_wrong_image_size_is_refused_in_one_line(runs_dir, own):
    """The done-means run: a digits model fed at --image-size 32 is refused (exit 2, one line, no run folder),
    naming the images' own size; without --image-size the same command runs at the images' own size."""
    proc = _run(runs_dir, own, own["base"] / "W.pt", "--model", "small_cnn", "--image-size", "32")
    assert_one_line_error(proc, "does not fit the data", "image size", "give --image-size 8", "--accept-poor-fit")
    assert _folders(runs_dir) == []


def test_torchscript_needing_normalisation_is_refused(runs_dir, own, tmp_path):
    """A TorchScript model trained on normalised inputs, given none (with the opt-in): refused in one line that
    names the normalisation flags (checked in the sandboxed child, before a run folder exists)."""

    path = _script(Raw(own["net"]), tmp_path / "raw.ts")
    proc = _run(runs_dir, own, path, "--allow-executable-model")
    assert_one_line_error(proc, "normalisation", "raw [0, 1] pixels", "--input-mean", "--input-std")
    assert _folders(runs_dir) == []


# ---------------------------------------------------------------- executable formats: opt-in and sandbox


class Writer(torch.nn.Module):
    """A forward that creates and writes a file at `target` (torch.from_file with shared=True opens it O_CREAT)."""

    def __init__(self, net, target: str):
        super().__init__()
        self.net = net
        self.target = target

    def forward(self, x):
        t = torch.from_file(self.target, True, 16, dtype=torch.uint8)
        t.fill_(65)
        return self.net(x) + 0 * t[0].float()  # used: TorchScript would drop an unused call


def test_code_is_refused_without_the_opt_in_and_sandboxed_with_it(runs_dir, own, tmp_path):
    """Without --allow-executable-model nothing of a TorchScript file runs (one line naming the opt-in and the
    safe format); with it, its forward cannot create a file outside the run folder."""
    from tmu_core.ownmodel.sandbox import landlock_abi

    target = tmp_path / "outside" / "pwned.bin"
    target.parent.mkdir()
    path = _script(Writer(own["net"], str(target)), tmp_path / "writer.ts")
    proc = _run(runs_dir, own, path)
    assert_one_line_error(proc, "TorchScript", "holds code", "--allow-executable-model", "state dict", "--model")
    assert not target.exists() and _folders(runs_dir) == []
    if landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock: writes outside the run folder cannot be blocked")
    proc = _run(runs_dir, own, path, "--allow-executable-model")
    assert_one_line_error(proc, "raised", "Permission denied")
    assert not target.exists()


def test_torch_export_program_runs_with_the_opt_in(runs_dir, own, tmp_path):
    """A .pt2 program runs (in the sandboxed child) and its unlearned model is written as a .pt2 that loads."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(Plain(own["net"]).eval(), (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "m.pt2"))
    proc = _run(runs_dir, own, tmp_path / "m.pt2")
    assert_one_line_error(proc, "torch.export program", "--allow-executable-model")
    proc = _run(runs_dir, own, tmp_path / "m.pt2", "--allow-executable-model")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Warning" not in proc.stderr
    r = json.loads(proc.stdout)
    o = {**r["own"], "unlearned_weights": r["unlearned_weights"]}  # the unlearned model: every run names it
    assert o["format"] == "export" and o["unlearned_weights"].endswith("unlearned.pt2")
    assert o["fit"]["train"] > 90
    again = torch.export.load(o["unlearned_weights"]).module()
    assert again(torch.rand(5, 1, 8, 8)).shape == (5, 10)


def test_safetensors_of_a_torchvision_architecture_runs(runs_dir, own, tmp_path):
    """A safetensors state dict with --model torchvision:resnet18 (untrained here, so --accept-poor-fit): the run
    finishes, notes the fit check, and writes the unlearned model as safetensors with the same keys."""
    import torchvision
    from safetensors.torch import load_file, save_file

    r = torchvision.models.resnet18(num_classes=10)
    r.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    save_file({k: v.contiguous() for k, v in r.state_dict().items()}, tmp_path / "r.safetensors")
    proc = _run(runs_dir, own, tmp_path / "r.safetensors", "--model", "torchvision:resnet18", "--accept-poor-fit")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    o = {**out["own"], "unlearned_weights": out["unlearned_weights"]}
    assert o["format"] == "safetensors" and o["unlearned_weights"].endswith("unlearned.safetensors")
    assert any("model-fit check" in n for n in o["notes"])
    assert set(load_file(o["unlearned_weights"])) == set(r.state_dict())


class Hog(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        big = torch.ones(4294967296, dtype=torch.float32)  # 16 GiB
        return self.net(x) + big[0]


class Forever(torch.nn.Module):
    """Reads one byte of a marker file (its access time is the test's sign that the forward began), then loops
    forever."""

    def __init__(self, net, marker: str):
        super().__init__()
        self.net = net
        self.marker = marker

    def forward(self, x):
        seen = torch.from_file(self.marker, False, 1, dtype=torch.uint8)
        n = int(x.numel()) + int(seen[0])
        while n > 0:
            n = n + 1
        return self.net(x)


def test_a_16_gib_allocation_is_named(runs_dir, own, tmp_path, monkeypatch):
    monkeypatch.setenv("TMU_MODEL_MEMORY_GB", "8")
    path = _script(Hog(own["net"]), tmp_path / "hog.ts")
    proc = _run(runs_dir, own, path, "--allow-executable-model")
    assert_one_line_error(proc, "tried to allocate 16.0 GiB", "memory limit")


def test_a_forward_that_never_returns_is_stopped(runs_dir, own, tmp_path, monkeypatch):
    """The per-call limit ends it (one line); and SIGTERM on the command line stops it, child included."""
    marker = tmp_path / "marker"
    marker.write_bytes(b"x")
    path = _script(Forever(own["net"], str(marker)), tmp_path / "forever.ts")
    monkeypatch.setenv("TMU_MODEL_CALL_SECONDS", "3")
    proc = _run(runs_dir, own, path, "--allow-executable-model", timeout=300)
    assert_one_line_error(proc, "did not return within 3 s", "TMU_MODEL_CALL_SECONDS")

    monkeypatch.setenv("TMU_MODEL_CALL_SECONDS", "3600")
    os.utime(marker, (0, time.time()))  # an access time before the change time: the next read sets it
    b = own["base"]
    args = [*RUN, "--data-root", str(own["root"]), "--original-weights", str(path), "--forget-list", str(b / "F.txt")]
    cli = start_cli([*args, "--allow-executable-model"], runs_dir)
    deadline = time.monotonic() + 240  # a file system without access times: stop it wherever it is by then
    while marker.stat().st_atime == 0 and time.monotonic() < deadline and cli.poll() is None:
        time.sleep(0.2)
    children = {p: _cmdline(p) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == cli.pid}
    assert any("_worker-sandbox" in c for c in children.values()) and cli.poll() is None  # the child is in the loop
    cli.send_signal(signal.SIGTERM)
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 130 and err.strip().splitlines() == ["error: interrupted"], err
    alive = lambda: [p for p, c in children.items() if c and _cmdline(p) == c]  # noqa: E731
    deadline = time.monotonic() + 60
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive()


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _parent(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_dashboard_form_refuses_in_one_line(runs_dir, own, tmp_path, monkeypatch):
    """The Forget set page's "Your model" entry: a model that does not fit its data (wrong image size) and a
    TorchScript file on a server whose operator did not allow code are each refused in one error line, with no
    run folder; the form has no switch of its own for code."""
    from clitools import ROOT
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("TMU_ALLOW_EXECUTABLE_MODELS", raising=False)
    monkeypatch.setenv("TMU_DASHBOARD_FOLDERS", os.pathsep.join([str(own["base"]), str(tmp_path)]))
    script = _script(Plain(own["net"]), tmp_path / "m.ts")
    at = AppTest.from_file(str(ROOT / "pages" / "forget_set.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [c for c in at.checkbox if "executable" in c.label]
    at.text_input(key="own_data_root").set_value(str(own["root"]))
    at.number_input(key="own_image_size").set_value(32)
    at.text_input(key="own_original_weights").set_value(str(own["base"] / "W.pt"))
    at.text_input(key="own_forget_list").set_value(str(own["base"] / "F.txt"))
    at.button(key="own_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "does not fit the data" in errors[0] and "image size" in errors[0], errors
    assert "\n" not in errors[0].strip()
    at.text_input(key="own_original_weights").set_value(str(script))
    at.button(key="own_launch").click().run()
    errors = [e.value.replace("\\_", "_") for e in at.error]  # shown as text: Markdown's _ escaped
    assert len(errors) == 1 and "holds code" in errors[0] and "TMU_ALLOW_EXECUTABLE_MODELS=1" in errors[0], errors
    assert _folders(runs_dir) == []


@pytest.mark.fast
def test_a_program_exported_at_a_fixed_batch_size_is_told_how_to_export_it():
    from tmu_core.ownmodel.check import _raised

    err = _raised("original weights", "m.pt2", AssertionError("Guard failed: x.size()[0] == 2"), "64", [64, 1, 8, 8])
    assert "batches of exactly 2 images" in str(err) and "dynamic_shapes" in str(err) and "--image-size" not in str(err)
