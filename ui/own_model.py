"""Your own model on the dashboard: the Forget set page's "Your model" entry (paths on the server) and what the
pages show for a run on it.

The widgets come from `OwnModelConfig`'s fields (the CLI's --original-weights, --forget-list, --gold ... flags
come from the same fields); validation stays in tmu_core (`the run's source, `ownmodel.source.Own``, run by `start`), whose
one-line refusal is shown as it is. No tensor maths here.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tmu_core import store
from tmu_core.config import DataConfig, OwnModelConfig, RunConfig, field_info, leaf_fields
from tmu_core.data.recipes import default_train_config
from tmu_core.errors import TMUError
from tmu_core.jobs import launch
from tmu_core.methods import primary_method
from tmu_core.models import MODELS
from tmu_core.store.io import WEIGHTS_LIMIT
from tmu_core.store.schema import MetricsFile
from ui import nav, state, tables, widgets
from ui.text import plain

PREFIX = "own_"
UPLOADS = {
    "original_weights": ["pt", "pth", "safetensors", "ts", "jit", "pt2"],
    "gold_weights": ["pt", "pth", "safetensors", "ts", "jit", "pt2"],
    "forget_list": ["txt", "lst", "csv"],
}  # fields a file can be uploaded for
# The most an upload of each field may hold, in MB, checked by the browser and the server before it is stored
# (None: the server's server.maxUploadSize); a larger one is refused and never written.
UPLOAD_MB = {"original_weights": None, "gold_weights": None, "forget_list": 16}
PATH_FIELDS = ("original_weights", "gold_weights", "forget_list", "manifest")


OWN_ABSENT = {  # why a cell of the own-model tables reads "—"
    "|Δ| vs gold": "— without a gold model (gold: none): there is no retrain to compare with",
    "label accuracy %": "— without a gold model (gold: none): gold's verdict is what labels are scored against",
    "A_r": "— where that model was not evaluated on the retained images",
}


def is_own(metrics: MetricsFile) -> bool:
    return metrics.own is not None


def _numbers(text: str, what: str) -> tuple[float, ...]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise TMUError(f"{what}: '{text}' is not a list of numbers (e.g. 0.49 0.48 0.45, one per channel)") from None


def _created() -> set:
    return st.session_state.setdefault(PREFIX + "created_uploads", set())


def uploaded(name: str) -> str | None:
    """The server path of a file uploaded for field `name` (kept in the run store), or None. A file over the
    field's limit is refused before it is stored."""
    generation = st.session_state.setdefault(PREFIX + "upload_generation", 0)
    mb = UPLOAD_MB[name]
    up = st.file_uploader(
        f"or upload the {name.replace('_', ' ')}",
        type=UPLOADS[name],
        key=f"{PREFIX}up_{name}_{generation}",
        max_upload_size=mb,
    )
    if up is None:
        return None
    limit = (mb << 20) if mb else WEIGHTS_LIMIT
    try:
        path, created = store.uploads.keep(up.getvalue(), up.name, limit, name.replace("_", " "))
    except TMUError as exc:
        st.error(plain(exc), icon=":material/error:")
        return None
    if created:
        _created().add(str(path))
    st.caption("uploaded: " + plain(path))
    return str(path)


# The entry's two columns: the model and what to forget on the left; the gold model (a choice and its file) and the
# input normalisation (mean beside std) together on the right. A field added later lands at the end of the left one.
LEFT = ("original_weights", "forget_list", "manifest")
RIGHT = ("gold", "gold_weights", "input_mean", "input_std")
CLI_ONLY = ("keep_models",)  # the entry launches TMU alone: no baseline model to keep


def discard_refused(values: dict) -> None:
    """After a refused launch: delete the uploads this session stored for it, and clear the upload widgets."""
    created = _created()
    for v in values.values():
        if isinstance(v, str) and v in created:
            store.uploads.discard(v)
            created.discard(v)
    st.session_state[PREFIX + "upload_generation"] = st.session_state.get(PREFIX + "upload_generation", 0) + 1


def own_inputs() -> dict:
    """One widget per OwnModelConfig field (tuples as typed numbers, a file upload beside the weights and the
    forget list) in two columns (LEFT, RIGHT); returns {field: value}."""
    from tmu_core.ownmodel.sandbox import operator_allows

    # executable model files (TorchScript, .pt2) are the server operator's choice (an environment variable), not
    # a form's
    by_name = {f.name: f for f in leaf_fields(OwnModelConfig) if f.name != "allow_executable_model"}
    rest = tuple(n for n in by_name if n not in LEFT + RIGHT + CLI_ONLY)
    out = {"allow_executable_model": operator_allows()}
    for col, names in zip(st.columns(2), (LEFT + rest, RIGHT)):
        with col:
            for name in (n for n in names if n in by_name):
                out[name] = _field(by_name[name])
    return out


def _field(f):
    """The widget of one OwnModelConfig field (and its upload, where a file can be uploaded)."""
    if isinstance(f.default, tuple):
        text = st.text_input(
            f.name.replace("_", " "),
            key=PREFIX + f.name,
            help=widgets.widget_words(f.metadata.get("help") or "") or None,
            placeholder="empty: " + ("what the weights hold" if "mean" in f.name else "as mean"),
        )
        value = _numbers(text, f.name.replace("_", " "))
    else:
        value = widgets.field_input(f, f.default, PREFIX + f.name)
    if f.name in UPLOADS:
        value = uploaded(f.name) or value
    return value


def run_config(values: dict, data_root: str, image_size: int | None, model: str, seed: int) -> RunConfig:
    """The RunConfig of a launch from the entry: imagefolder data, TMU alone, the user's model; image size None:
    the images' own size when they all share one. Every server path must lie in `allowed_folders`."""
    from tmu_core.ownmodel.fit import with_native_size

    own = OwnModelConfig(**{k: (v.strip() if isinstance(v, str) else v) for k, v in values.items()})
    if not own.active:
        raise TMUError("enter the path of your model's weights (original weights): a state dict of its architecture")
    if data_root.strip():
        store.uploads.check_readable(data_root.strip(), "data folder")
    for name in PATH_FIELDS:
        if getattr(own, name, ""):
            store.uploads.check_readable(getattr(own, name), name.replace("_", " "))
    cfg = RunConfig(
        data=DataConfig(
            dataset="imagefolder", data_root=data_root.strip(), **({"image_size": image_size} if image_size else {})
        ),
        train=default_train_config("imagefolder").model_copy(update={"model": model.strip()}),
        methods=(primary_method(),),
        seed=seed,
        own=own,
    )
    return cfg if image_size else with_native_size(cfg)


def entry() -> bool:
    """The "Your model" entry: paths on the server, checked and launched in the background. True right after a
    launch from it (the page below, about the project's own forget set, then holds back its warnings)."""
    store.uploads.expire()  # old uploads go even when nobody uploads again
    with st.expander(
        "Your model: TMU on a model you trained, with your own list of files to forget (no gold retrain needed)",
        icon=":material/upload_file:",
    ):
        st.caption(
            "Paths are on the server running this dashboard, inside the folders it may read ("
            + ", ".join(plain(f) for f in store.uploads.readable_folders())
            + "); weights and the forget list can also be uploaded (a refused upload is deleted, others "
            "expire after a week). The data folder holds train/ (what the model was "
            "trained on), aux/ (the same classes, never trained on) and test/, each with one folder per "
            "class; output k of the model must be the k-th class folder in sorted order. The forget list "
            "names files relative to train/, one per line (e.g. cat/0001.png), from any classes. The safe model "
            "format is a state dict (.pt or .safetensors) of a named architecture; TorchScript and torch.export "
            "files hold code and are taken only where the person running this dashboard allowed them "
            "(TMU_ALLOW_EXECUTABLE_MODELS=1), then run in a sandboxed child process."
        )
        c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
        data_root = c1.text_input(
            "data folder", key=PREFIX + "data_root", placeholder="/path/to/folder with train/ aux/ test/"
        )
        size = c2.number_input(
            "image size",
            min_value=8,
            max_value=256,
            value=None,
            placeholder="the images' own",
            key=PREFIX + "image_size",
            help=field_info(DataConfig, "image_size").help,
        )
        image_size = int(size) if size else None
        model = c3.selectbox(
            "model",
            MODELS.names(),
            key=PREFIX + "model",
            accept_new_options=True,
            help="the architecture of the state dict: a registered one, or type torchvision:NAME (e.g. "
            "torchvision:resnet18) or timm:NAME",
        )
        seed = int(c4.number_input("seed", min_value=0, value=0, step=1, key=PREFIX + "seed"))
        values = own_inputs()
        if st.button("Launch TMU on your model", key=PREFIX + "launch", icon=":material/play_arrow:"):
            try:
                run = launch.start_run(run_config(values, data_root, image_size, model, seed))
            except TMUError as exc:
                discard_refused(values)
                st.error(plain(state.ui_message(exc)), icon=":material/error:")
                return False
            state.select_run(run.id)
            st.success(f"Launched run `{run.id}`: it checks your model and data, then runs TMU in the background.")
            nav.link("run", "Follow it on the Run page")
            return True
    return False


def result_panel(run, metrics: MetricsFile) -> None:
    """A finished run on the user's model: where it came from, TMU's split per class, the readouts, notes,
    warnings and the files to take away (the inspection pages show the rest, as for any run)."""
    own, tmu = metrics.own, tables.tmu_summary(metrics)
    card = st.container(border=True, key="own_result")
    card.markdown(
        f"**Your model** · {plain(own.original_weights)} ({plain(own.format.replace('_', ' '))}) · "
        f"{metrics.forget_count} files of {plain(', '.join(own.classes))} · gold: {plain(own.gold)}"
    )
    if tmu is not None:
        state.split_metrics(card.columns(3), metrics)
    rows = [
        {
            "model": name,
            "A_test": v.acc_test,
            "A_r": v.acc_remain,
            "A_f": v.acc_forget,
            "|Δ| vs gold": v.abs_delta,
            "MIA": v.mia,
            "seconds": v.seconds,
        }
        for name, v in metrics.models.items()
    ]
    widgets.text_table(pd.DataFrame(rows), helps=OWN_ABSENT)
    blocks = dict(tmu.per_class or {}) if tmu is not None else {}
    if tmu is not None and not blocks and len(own.classes) == 1:  # one class: the whole split is the class's
        blocks = {own.classes[0]: tmu}
    if blocks:
        widgets.text_table(
            pd.DataFrame(
                [
                    {
                        "class": c,
                        "forgotten": getattr(b, "forget_count", metrics.forget_count),
                        "easy": b.pred_easy,
                        "hard": b.pred_hard,
                        "|D_a|": b.aux_count,
                        "twin on D_a %": b.twin_fidelity.twin_acc_aux if b.twin_fidelity else None,
                        "original on D_f %": b.twin_fidelity.original_acc_forget if b.twin_fidelity else None,
                        "label accuracy %": b.label_accuracy,
                    }
                    for c, b in blocks.items()
                ]
            ),
            helps=OWN_ABSENT,
        )
    kept = own.kept_models
    st.caption(
        "Saved unlearned models: " + (plain("; ".join(f"{m}: {path}" for m, path in kept.items())) if kept else "none")
    )
    for note in own.notes:
        st.caption(plain(widgets.widget_words(note)))
    for text in tmu.warnings if tmu is not None else []:
        st.warning(f"Thin evidence: {plain(widgets.widget_words(text))}.", icon=":material/warning:")
    if run.exists(store.AUDIT):
        audit = run.load_table(store.AUDIT)
        st.markdown("**Audit**, one row per forgotten file")
        widgets.text_table(audit, height=min(420, 38 + 35 * len(audit)))  # features 3 digits, p(easy) 2
    state.run_downloads(run, metrics)
