"""TMU on a model the project did not train: the done-means run, its refusals, TorchScript, and the
round trip against a native run."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from clitools import assert_one_line_error
from owntools import digits_folder, forget_list, train_plain

RUN = ["run", "--dataset", "imagefolder", "--image-size", "8", "--model", "small_cnn", "--gold", "none", "--json"]


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """Digits as 8x8 PNGs in train/ aux/ test/, small_cnn trained on train/ by a plain loop, its state dict, a
    30-path forget list from classes 3, 5 and 8, a 3-class state dict and a TorchScript copy."""
    from tmu_core.models import build_model

    base = tmp_path_factory.mktemp("own")
    root = digits_folder(base / "digits")
    net = train_plain(root)
    torch.save(net.state_dict(), base / "W.pt")
    torch.save(build_model("small_cnn", 1, 3, 8).state_dict(), base / "W3.pt")
    forget_list(root, base / "F.txt")
    forget_list(root, base / "Fbad.txt", extra=["3/not-there.png"])
    noaux = base / "noaux"
    digits_folder(noaux, splits=("train", "test"))
    return {"base": base, "root": root, "net": net}


def own_run(cli, root, weights, forget, *extra, **kw):
    """`tmu run` on the user's own model: its data folder, weights file and forget list, then `extra` flags."""
    return cli(
        *RUN, "--data-root", str(root), "--original-weights", str(weights), "--forget-list", str(forget), *extra, **kw
    )


def _run_folders(runs_dir):
    return [p for p in runs_dir.iterdir() if not p.name.startswith("_")] if runs_dir.exists() else []


def test_done_means_run(cli, runs_dir, own):
    """The documented command finishes; the unlearned weights load into small_cnn; the audit has 30 verdicts."""
    from tmu_core.models import build_model

    b = own["base"]
    proc = own_run(cli, own["root"], b / "W.pt", b / "F.txt", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    o, split = result["own"], result["tmu"]
    assert o["gold"] == "none" and o["format"] == "state_dict" and o["classes"] == ["3", "5", "8"]
    assert set(split["per_class"]) == {"3", "5", "8"}
    assert all(b_["forget_count"] == 10 for b_ in split["per_class"].values())
    assert split["label_accuracy"] is None and split["label_accuracy_by_features"] is None  # no gold, no ablation
    assert "gold" not in result["models"] and result["models"]["tmu"]["abs_delta"] is None
    net = build_model("small_cnn", 1, 10, 8)
    net.load_state_dict(torch.load(result["unlearned_weights"], weights_only=True))  # strict: same architecture
    audit = pd.read_csv(result["audit_csv"])
    assert len(audit) == 30 and set(audit["verdict"]) <= {"easy", "hard", "undecided"}
    assert audit["verdict"].notna().all()
    kept_right = audit["action"] == "kept (a retrain would still get it right)"
    assert not (kept_right & (audit["p_easy"] < 0.5)).any()  # the words never contradict p(easy)
    fc = split["forecast"]  # a retrain's predicted A_f with its 90% interval, without gold
    assert fc["low"] <= fc["predicted_acc_forget"] <= fc["high"] and fc["level"] == 0.9
    assert all(b_["forecast"]["files"] == 10 and b_["decision_rule"] for b_ in split["per_class"].values())
    assert set(audit["class"].astype(str)) == {"3", "5", "8"}
    assert {"path", "NF", "AF", "CF", "p_easy"} <= set(audit.columns)
    assert sorted(audit["path"]) == sorted((b / "F.txt").read_text().split())
    # the run reads back from the store like any other (metrics without gold are not 'damaged')
    from tmu_core import store

    run = store.open_run(result["run_id"])
    assert run.metrics()["own"]["gold"] == "none"


@pytest.mark.parametrize(
    "case,needles",
    [
        ("path", ["3/not-there.png", "not in train/"]),
        ("classes", ["3 classes", "10 class folders"]),
        ("noaux", ["no aux/ folder"]),
        ("oracle", ["oracle_labels reads the gold model", "--gold-weights"]),
    ],
)
def test_refusals(cli, runs_dir, own, case, needles):
    """A path not in train/, a state dict of the wrong class count, a folder without aux/, a control that reads
    gold in a run without one: one line, exit 2, no run folder."""
    b = own["base"]
    args = {
        "path": [own["root"], b / "W.pt", b / "Fbad.txt"],
        "classes": [own["root"], b / "W3.pt", b / "F.txt"],
        "noaux": [b / "noaux", b / "W.pt", b / "F.txt"],
        "oracle": [own["root"], b / "W.pt", b / "F.txt", "--methods", "tmu", "oracle_labels"],
    }[case]
    proc = own_run(cli, *args)
    assert_one_line_error(proc, *needles)
    assert _run_folders(runs_dir) == []


def test_forget_list_conflicts_with_forget_count(cli, runs_dir, own):
    b = own["base"]
    proc = own_run(cli, own["root"], b / "W.pt", b / "F.txt", "--forget-count", "5")
    assert_one_line_error(proc, "--forget-list", "--forget-count")


def test_own_flags_need_original_weights(cli, runs_dir, own):
    proc = cli("run", "--dataset", "digits", "--forget-list", str(own["base"] / "F.txt"))
    assert_one_line_error(proc, "--original-weights")


def test_layout_numbers_and_request(runs_dir, own):
    """Train ids first then aux ids; a request's parts leave out the whole request from what remains."""
    from tmu_core.config import DataConfig, ForgetSpec, OwnModelConfig
    from tmu_core.ownmodel.layout import load_user_data, resolve_request

    b = own["base"]
    ocfg = OwnModelConfig(original_weights=str(b / "W.pt"), forget_list=str(b / "F.txt"))
    data = load_user_data(DataConfig(dataset="imagefolder", data_root=str(own["root"]), image_size=8), ocfg)
    assert data.classes == [str(c) for c in range(10)] and data.channels == 1
    assert (data.aux_ids == np.arange(len(data.train_ids), len(data.y))).all()
    req = resolve_request(data, ocfg, ForgetSpec(), 0)
    assert [p.class_index for p in req.parts] == [3, 5, 8] and len(req.whole.ids) == 30
    for p in req.parts:
        assert not set(p.remain_ids(data)) & set(req.whole.ids.tolist())
        assert set(data.y[p.ids].tolist()) == {p.class_index}


def test_torchscript_without_embed(runs_dir, own, tmp_path, monkeypatch):
    """A TorchScript model with no embed() loads (where a sandboxed child would load it), says its features use
    logits, and trains as a copy."""
    from tmu_core.config import DataConfig, OwnModelConfig
    from tmu_core.ownmodel.layout import load_user_data
    from tmu_core.ownmodel.weights import load_model, save_like

    class Plain(torch.nn.Module):  # no embed: forward only
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    path = tmp_path / "m.ts"
    torch.jit.save(torch.jit.script(Plain(copy.deepcopy(own["net"]))), str(path))
    data = load_user_data(
        DataConfig(dataset="imagefolder", data_root=str(own["root"]), image_size=8),
        OwnModelConfig(original_weights=str(path)),
    )
    monkeypatch.setattr("tmu_core.ownmodel.sandbox._entered", True)  # as in the sandboxed child, which alone loads code
    loaded = load_model(str(path), "small_cnn", data, allow_code=True)
    assert loaded.format == "torchscript" and not loaded.has_embed and "logits" in loaded.notes[0]
    twin = copy.deepcopy(loaded.model)
    assert all(p.is_leaf for p in twin.parameters())
    x = torch.rand(4, 1, 8, 8)
    assert twin.embed(x).shape == (4, 10)
    torch.optim.SGD(twin.parameters(), lr=0.1)  # an optimizer takes the copy's parameters
    out = tmp_path / "out.ts"
    out.write_bytes(save_like(loaded, twin))
    assert torch.allclose(torch.jit.load(str(out))(x), loaded.model(x))


def test_round_trip_matches_native_run(runs_dir, tmp_path):
    """A digits run's cached original exported as a state dict and its data as an image folder with the same
    split, run on the loaded-model path with --gold-weights = that run's gold: the same predicted split and
    the same metrics as the native run (same seed, CPU)."""
    from owntools import write_png

    from tmu_core import store
    from tmu_core.config import DataConfig, ForgetSpec, OwnModelConfig, RunConfig, TrainConfig
    from tmu_core.data import load_dataset, resolve_forget
    from tmu_core.jobs.pipeline import execute, start
    from tmu_core.tmu.config import dataset_defaults

    # a briefly trained original and the 0.5 cut: a split with easy and hard samples both (4 / 11 when measured)
    train = TrainConfig(epochs=3, batch_size=32)
    tmu = {"clf_epochs": 40, "cf_epochs": 1, "clf_threshold": "0.5"}
    native_cfg = RunConfig(
        data=DataConfig(dataset="digits", train_per_class=40),
        forget=ForgetSpec(forget_class="8", forget_count=15),
        train=train,
        methods=("tmu",),
        method_params=(("tmu", tuple(sorted(tmu.items()))),),
        device="cpu",
    )
    native = execute(start(native_cfg))
    data = load_dataset(native_cfg.data, 0)
    forget = resolve_forget(data, native_cfg.forget, 0)

    root = tmp_path / "exported"
    for split, ids in (("train", data.train_ids), ("aux", data.aux_ids)):
        for i in ids:
            write_png(root / split / data.classes[int(data.y[i])] / f"{i:05d}.png", data.x[i, 0].numpy())
    for j in range(len(data.y_test)):
        write_png(root / "test" / data.classes[int(data.y_test[j])] / f"{j:05d}.png", data.x_test[j, 0].numpy())
    weights = {}
    for kind in ("original", "gold"):
        weights[kind] = tmp_path / f"{kind}.pt"
        torch.save(store.load_state(store.model_cache_file(native["cache"][kind])), weights[kind])
    flist = tmp_path / "forget.txt"
    flist.write_text("".join(f"8/{i:05d}.png\n" for i in forget.ids))

    params = {**dataset_defaults("digits"), **tmu}  # the native run's TMU settings, as flags would give them
    own_cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root=str(root), image_size=8),
        train=train,
        methods=("tmu",),
        method_params=(("tmu", tuple(sorted(params.items()))),),
        device="cpu",
        own=OwnModelConfig(
            original_weights=str(weights["original"]), forget_list=str(flist), gold_weights=str(weights["gold"])
        ),
    )
    own = execute(start(own_cfg))

    native_split = store.open_run(native["run_id"]).samples().query("role == 'forget'").sort_values("id")["pred_label"]
    audit = pd.read_csv(own["audit_csv"])
    assert {"easy", "hard"} <= set(native_split)  # a split worth comparing
    assert list(audit["verdict"]) == list(native_split)
    assert list(audit["p_easy"]) == pytest.approx(
        list(store.open_run(native["run_id"]).samples().query("role == 'forget'").sort_values("id")["p_easy"]), abs=1e-6
    )
    for name in ("original", "gold", "tmu"):
        for key in (
            "acc_test",
            "acc_remain",
            "acc_forget",
            "abs_delta",
            "sample_agreement",
            "activation_distance",
            "mia",
            "mia_auc",
        ):
            assert own["models"][name][key] == pytest.approx(native["models"][name][key], abs=1e-6), (name, key)
    for key in ("label_accuracy", "pred_easy", "pred_hard", "gold_hard", "aux_count", "threshold"):
        assert own["tmu"][key] == pytest.approx(native["tmu"][key], abs=1e-9), key
    gold_pages(own["run_id"], own)


def gold_pages(run_id: str, result: dict) -> None:
    """With the user's own gold (--gold-weights), Alignment shows the full table and the audit scores the split."""
    from clitools import ROOT
    from streamlit.testing.v1 import AppTest

    for name in ("alignment", "audit"):
        at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=180)
        at.session_state["run_id"] = run_id
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not any("no gold model" in i.value for i in at.info), name
    labels = {m.label: m.value for m in at.metric}
    assert labels["Label accuracy"] == f"{result['tmu']['label_accuracy']:.1f}%"


def test_dashboard_shows_an_own_model_run(runs_dir, own, monkeypatch):
    """The Forget set page's "Your model" entry refuses a bad model in one line (no run folder); a finished run
    on the user's model shows on the Run page (split per class, audit table) and the Alignment page says why it
    is empty."""
    from clitools import ROOT
    from streamlit.testing.v1 import AppTest

    from tmu_core.config import DataConfig, OwnModelConfig, RunConfig, TrainConfig
    from tmu_core.jobs.pipeline import execute, start

    b = own["base"]
    monkeypatch.setenv("TMU_DASHBOARD_FOLDERS", str(b))  # the operator lets the dashboard read the test's files
    at = AppTest.from_file(str(ROOT / "pages" / "forget_set.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="own_data_root").set_value(str(own["root"]))
    at.number_input(key="own_image_size").set_value(8)
    at.text_input(key="own_original_weights").set_value(str(b / "W3.pt"))
    at.text_input(key="own_forget_list").set_value(str(b / "F.txt"))
    at.button(key="own_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("3 classes" in e.value and "10 class folders" in e.value for e in at.error)
    assert _run_folders(runs_dir) == []

    tiny = {"clf_epochs": 20, "twin_epochs": 1, "cf_epochs": 1, "epochs": 1}
    cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root=str(own["root"]), image_size=8),
        train=TrainConfig(batch_size=64),
        methods=("tmu", "finetune", "random_k"),
        device="cpu",
        method_params=(("finetune", (("epochs", 1),)), ("tmu", tuple(sorted(tiny.items())))),
        own=OwnModelConfig(original_weights=str(b / "W.pt"), forget_list=str(b / "F.txt")),
    )
    run = start(cfg)
    result = execute(run)
    # a baseline takes the 3-class request as it is; the random_k control runs without gold
    assert set(result["models"]) == {"original", "tmu", "finetune", "random_k"}
    assert result["random_k"]["forgotten"] == result["tmu"]["pred_hard"]
    assert result["forget_count"] == 30
    at = AppTest.from_file(str(ROOT / "pages" / "run.py"), default_timeout=180)
    at.session_state["run_id"] = run.id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.label == "Predicted easy / hard" for m in at.metric)
    shown = [df.value for df in at.dataframe]
    assert any("verdict" in df.columns and len(df) == 30 for df in shown)  # the audit table
    assert any("class" in df.columns and set(df["class"]) == {"3", "5", "8"} for df in shown)  # split per class
    at = AppTest.from_file(str(ROOT / "pages" / "alignment.py"), default_timeout=180)
    at.session_state["run_id"] = run.id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("no gold model" in i.value and "--gold-weights" in i.value for i in at.info)  # why, in words
    assert {"TMU's predicted A_f after removal", "Achieved A_f", "TMU seconds"} <= {m.label for m in at.metric}
    (models,) = [df.value for df in at.dataframe if "MIA" in df.value.columns]
    assert len(models) == 4 and models["A_test"].notna().all()
    own_pages(run, result)


def own_pages(run, result) -> None:
    """The inspection pages on a run on the user's own model without gold: its own numbers and thumbnails."""
    from apptools import plotly_specs, values
    from clitools import ROOT
    from streamlit.testing.v1 import AppTest

    def page(name, **state):
        at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=180)
        at.session_state["run_id"] = run.id
        for k, v in state.items():
            at.session_state[k] = v
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not any("benchmark run" in i.value for i in at.info), name  # no longer turned away
        return at

    # a request over three classes: p(easy)'s reliability pooled over the classes' twins, for the audit page's curve
    assert result["tmu"]["reliability_twin"] and result["tmu"]["ece_twin"] is not None
    at = page("audit")
    shown = [df.value for df in at.dataframe if "p_easy" in df.value.columns and "image" in df.value.columns]
    forget = [df for df in shown if "source_id" not in df.columns]
    assert sum(len(df) for df in forget) == 30  # every forgotten file, with its thumbnail
    assert all(df["image"].str.startswith("data:image/png").all() for df in forget)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Predicted easy / hard"] == f"{result['tmu']['pred_easy']} / {result['tmu']['pred_hard']}"
    assert any("no gold model" in i.value for i in at.info)
    assert {b.label for b in at.get("download_button")} >= {
        "Download the unlearned model",
        "Download the audit table (CSV)",
    }

    at = page("features", feat_set="forget")
    dist = plotly_specs(at)[0]
    assert sum(len(values(t["y"])) for t in dist["data"]) == 3 * 30  # NF, AF, CF of each forgotten file
    assert any("no gold model" in i.value for i in at.info)  # the ablation says why it is empty

    arrays = run.embeddings()  # a stored map (no UMAP fit in a test): D_f is drawn from the run's own activations
    angle = np.linspace(0, 2 * np.pi, len(arrays["ids"]), endpoint=False)
    xy = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    run.save_umap_map("tmu", ids=arrays["ids"], role=arrays["role"], label=arrays["label"], xy=xy)
    run.set_umap_job("tmu", state="complete")
    at = page("embeddings", emb_model="tmu", emb_color="truth")  # a choice left over from a run with gold
    colour = at.radio(key="emb_color")
    assert colour.value == "predicted" and colour.disabled  # no gold verdict to colour by: TMU's prediction
    (fig,) = plotly_specs(at)
    assert sum(len(values(t["x"])) for t in fig["data"] if t["name"].startswith("D_f")) == 30
    assert set(arrays["label"][arrays["role"] == "forget"]) == {3, 5, 8}


def test_manifest_reads_like_the_folder(runs_dir, own):
    """A CSV manifest (path,label,split) gives the same data as the folder; one without aux rows is refused."""
    from tmu_core.config import DataConfig, OwnModelConfig
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.layout import load_user_data

    root = own["root"]
    rows = [
        f"{split}/{f.parent.name}/{f.name},{f.parent.name},{split}"
        for split in ("train", "aux", "test")
        for f in sorted((root / split).glob("*/*.png"))
    ]
    manifest = root / "manifest.csv"
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    cfg = DataConfig(dataset="imagefolder", image_size=8)
    by_manifest = load_user_data(cfg, OwnModelConfig(original_weights="W.pt", manifest=str(manifest)))
    by_folder = load_user_data(replace_root(cfg, root), OwnModelConfig(original_weights="W.pt"))
    assert by_manifest.classes == by_folder.classes
    assert (len(by_manifest.train_ids), len(by_manifest.aux_ids), len(by_manifest.y_test)) == (
        len(by_folder.train_ids),
        len(by_folder.aux_ids),
        len(by_folder.y_test),
    )
    assert sorted(by_manifest.x.flatten().tolist()) == sorted(by_folder.x.flatten().tolist())
    no_aux = root / "manifest-no-aux.csv"
    no_aux.write_text("path,label,split\n" + "\n".join(r for r in rows if not r.endswith(",aux")) + "\n")
    with pytest.raises(TMUError, match="no row with split 'aux'"):
        load_user_data(cfg, OwnModelConfig(original_weights="W.pt", manifest=str(no_aux)))


def replace_root(cfg, root):

    return cfg.model_copy(update={"data_root": str(root)})


def test_normalisation_and_size_are_checked(runs_dir, own):
    """--input-mean that contradicts the weights, and images of the wrong size, are one clear refusal each."""
    from tmu_core.config import DataConfig, OwnModelConfig
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.layout import load_user_data
    from tmu_core.ownmodel.weights import load_model

    b = own["base"]
    data = load_user_data(
        replace_root(DataConfig(dataset="imagefolder", image_size=8), own["root"]),
        OwnModelConfig(original_weights=str(b / "W.pt")),
    )
    with pytest.raises(TMUError, match="normalises with mean"):
        load_model(str(b / "W.pt"), "small_cnn", data, (0.1,), (0.3,))
    loaded = load_model(str(b / "W.pt"), "small_cnn", data, (0.5,), (0.25,))  # what the weights hold: accepted
    assert loaded.format == "state_dict"
    with pytest.raises(TMUError, match="not a vit_tiny state dict"):
        load_model(str(b / "W.pt"), "vit_tiny", data)


def test_uploads_are_kept_in_the_run_store_by_content(runs_dir):
    from tmu_core import store

    a = store.upload_file(b"weights", "../../my model.pt")
    assert a.parent == store.runs_root() / "_cache" / "uploads" and a.name.endswith("-my-model.pt")
    assert store.upload_file(b"weights", "my model.pt") == a and store.upload_file(b"other", "my model.pt") != a


def test_a_changed_input_refuses_a_resume(cli, runs_dir, own, tmp_path):
    """The digests of the weights, the forget list and each split's file list are kept at start; after an edit of
    the forget list (or a file added to train/), `tmu execute` refuses in one line naming it, and runs nothing."""
    import shutil

    from tmu_core import store
    from tmu_core.config import DataConfig, OwnModelConfig, RunConfig, TrainConfig
    from tmu_core.jobs.pipeline import start

    root = tmp_path / "data"
    shutil.copytree(own["root"], root)
    forget = tmp_path / "F.txt"
    shutil.copy(own["base"] / "F.txt", forget)
    cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root=str(root), image_size=8),
        train=TrainConfig(batch_size=64),
        methods=("tmu",),
        device="cpu",
        own=OwnModelConfig(original_weights=str(own["base"] / "W.pt"), forget_list=str(forget)),
    )
    run = start(cfg)
    assert set(run.read_json("inputs.json")) == {
        "original_weights",
        "forget_list",
        "train/ file list",
        "aux/ file list",
        "test/ file list",
    }
    forget.write_text(forget.read_text().splitlines()[0] + "\n")  # another request
    proc = cli("execute", run.id)
    assert_one_line_error(proc, "forget list", "changed since it started")
    assert store.open_run(run.id).status()["state"] == "failed"
    shutil.copy(own["base"] / "F.txt", forget)  # back as it was; now a file appears in train/
    shutil.copy(
        root / "train" / "3" / sorted(p.name for p in (root / "train" / "3").iterdir())[0],
        root / "train" / "3" / "extra.png",
    )
    proc = cli("execute", run.id)
    assert_one_line_error(proc, "train/ file list", "changed since it started")


def test_baselines_models_are_kept_on_request_and_the_run_says_which(cli, runs_dir, own):
    """A run of a baseline alone saved nothing and said nothing: without --keep-models metrics.json lists no kept
    model and a note names the baseline; with it, weights/finetune.pt loads into the user's architecture."""
    from tmu_core.models import build_model

    b = own["base"]
    base = ("--methods", "finetune", "--finetune-epochs", "1")
    proc = own_run(cli, own["root"], b / "W.pt", b / "F.txt", *base, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    o = json.loads(proc.stdout)["own"]
    assert o["kept_models"] == {} and any("finetune" in n and "--keep-models" in n for n in o["notes"])
    proc = own_run(cli, own["root"], b / "W.pt", b / "F.txt", *base, "--keep-models", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    o = json.loads(proc.stdout)["own"]
    assert set(o["kept_models"]) == {"finetune"} and not any("--keep-models" in n for n in o["notes"])
    net = build_model("small_cnn", 1, 10, 8)
    net.load_state_dict(torch.load(o["kept_models"]["finetune"], weights_only=True))
    text_run = [a for a in RUN if a != "--json"]  # the text summary says so too
    flags = ["--data-root", str(own["root"]), "--original-weights", str(b / "W.pt"), "--forget-list", str(b / "F.txt")]
    proc = cli(*text_run, *flags, *base, timeout=600)
    assert proc.returncode == 0 and "saved models: none" in proc.stdout, proc.stdout[-500:]


@pytest.mark.fast
@pytest.mark.parametrize("gold", ["none", "retrain"])
def test_gold_flags_follow_one_rule(gold):
    """--gold-weights F is --gold weights: given alone it chooses weights; beside another --gold choice it is
    refused in one line, the same for none and retrain."""
    from tmu_core.config import OwnModelConfig
    from tmu_core.errors import TMUError

    assert OwnModelConfig(original_weights="W.pt", gold_weights="G.pt").gold == "weights"
    assert OwnModelConfig(original_weights="W.pt").gold == "none"
    with pytest.raises(TMUError) as err:
        OwnModelConfig(original_weights="W.pt", gold=gold, gold_weights="G.pt")
    assert f"--gold {gold} and --gold-weights G.pt disagree" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.fast
def test_stored_json_is_strict_and_rounded():
    """No bare NaN (strict parsers refuse it) and no float32 residue in what the project writes."""
    from tmu_core import store

    values = {"auc_p_easy": float("nan"), "acc": np.float32(0.1) * 100, "started": 1765080000.123456, "n": np.int64(3)}
    text = store.json_text({**values, "inf": float("inf")})
    back = json.loads(text)
    assert back == {"auc_p_easy": None, "acc": 10.0, "started": 1765080000.123456, "n": 3, "inf": None}
    assert "NaN" not in text and json.loads(store.json_text({"d": 69.9999988}))["d"] == 70.0
    assert json.loads(store.json_text({"d": 9.999996, "e": 0.1654443})) == {"d": 10.0, "e": 0.165444}


@pytest.mark.fast
def test_gold_retrain_counts_steps_not_epochs():
    """240 images at batch 128 are 2 steps an epoch: the recipe's 15 epochs would stop after 30 steps."""
    from tmu_core.config import DataConfig, OwnModelConfig, RunConfig, TrainConfig
    from tmu_core.ownmodel.source import GOLD_MIN_STEPS, gold_recipe

    cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root="x"),
        train=TrainConfig(epochs=15, batch_size=128),
        own=OwnModelConfig(original_weights="W.pt", gold="retrain"),
    )
    recipe, steps = gold_recipe(cfg, 240)
    assert steps >= GOLD_MIN_STEPS and recipe.epochs == 200 and recipe.batch_size == 128
    big, steps = gold_recipe(cfg, 128 * 100)  # a large data set keeps the recipe's epochs
    assert big.epochs == 15 and steps == 1500


def test_the_users_folder_is_read_within_the_image_bounds(runs_dir, tmp_path, monkeypatch):
    """train/ aux/ test/ are read by the one image reader: an image over the pixel cap is refused unread, in one
    line, as in any image folder."""
    from owntools import write_png

    import tmu_core.data.sources as sources
    from tmu_core.config import DataConfig, OwnModelConfig
    from tmu_core.errors import TMUError
    from tmu_core.ownmodel.layout import load_user_data

    for split in ("train", "aux", "test"):
        for c in ("a", "b"):
            write_png(tmp_path / split / c / "0.png", np.zeros((40, 30), np.uint8))
    monkeypatch.setattr(sources, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(TMUError) as err:
        load_user_data(DataConfig(dataset="imagefolder", data_root=str(tmp_path), image_size=8), OwnModelConfig())
    assert "30x40 pixels" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.fast
def test_a_retrained_gold_well_below_the_original_on_d_r_is_named():
    """A gold retrained here that has not learned D_r as the user's model did is a weak reference: the run says
    so beside its recipe (240 images once gave a gold at A_r 77.7 against the original's 100)."""
    from types import SimpleNamespace as NS

    from tmu_core.jobs.sources import References
    from tmu_core.ownmodel.source import Own

    loaded = {
        "original": NS(format="state_dict", path="W.pt"),
        "batch_accuracy": 100.0,
        "gold_recipe": "small_cnn, 200 epochs (400 steps of 128)",
    }
    inputs = NS(extra=loaded, data=NS(source="/data"), request=NS(parts=[NS(class_name="a")]))
    cfg = NS(own=NS(gold="retrain"))
    refs = References(original=None, gold=None)
    for gold_remain, warned in ((77.7, True), (98.0, False)):
        models = {"original": {"acc_remain": 100.0}, "gold": {"acc_remain": gold_remain}}
        notes = Own().describe(cfg, inputs, refs, models)["own"]["notes"]
        assert any("project's training recipe" in n for n in notes)
        assert any("points below your model's" in n for n in notes) == warned


def test_a_data_folder_without_a_dataset_is_not_recorded_as_digits(cli, runs_dir, own):
    """--data-root with train/ folders but no --dataset: with --original-weights the run records what it read
    (imagefolder, the request, absolute paths); without, digits (which reads no folder) refuses in one line."""
    from tmu_core.config import DataConfig, OwnModelConfig, RunConfig
    from tmu_core.jobs.pipeline import start

    proc = cli("run", "--data-root", str(own["root"]), "--forget-count", "5")
    assert_one_line_error(proc, "digits is bundled and reads no folder", "--dataset imagefolder")
    assert _run_folders(runs_dir) == []
    b = own["base"]
    cfg = RunConfig(
        data=DataConfig(data_root=str(own["root"]), image_size=8),  # dataset left at its default
        methods=("tmu",),
        own=OwnModelConfig(original_weights=str(b / "W.pt"), forget_list=str(b / "F.txt")),
    )
    stored = start(cfg).config()
    assert stored["data"]["dataset"] == "imagefolder" and stored["forget"] == {}  # no unused class 8 / count 100
    assert stored["request"] == {"weights": "W.pt", "files": 30, "classes": ["3", "5", "8"], "data": str(own["root"])}


@pytest.mark.fast
def test_an_own_model_runs_label_names_its_request():
    """Two own-model runs used to read 'imagefolder · class 8 · 100' (unused defaults) in the sidebar and the
    Runs table; they name the weights file, the files over classes and the data folder."""
    from tmu_core.store import RunInfo
    from ui import tables

    request = {"weights": "digits_cnn.pt", "files": 30, "classes": ["3", "5", "8"], "data": "/tmp/u/digits"}
    cfg = {"data": {"dataset": "imagefolder"}, "forget": {}, "train": {"model": "small_cnn"}, "request": request}
    info = RunInfo("own-c3-5-8", "complete", "complete", 1.0, None, "2026-12-07T02:27:03", cfg)
    label = tables.run_label(info)
    assert "digits_cnn.pt · 30 files over 3 classes · digits" in label and "class" not in label.split("over")[0]
    assert "8 · 100" not in label
    assert tables.runs_frame([info])["forget set"].tolist() == ["digits_cnn.pt · 30 files over 3 classes · digits"]
