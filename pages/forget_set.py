"""Forget set: choose the data, the class and D_f (by count, fraction or by picking images), see what it implies.

An invalid choice (data that is not there, a bad forget set) leaves the draft at the last valid one, and the
Run page says so.
"""

import copy

import streamlit as st

from tmu_core.config import MAX_GOLD_SEEDS, MAX_SEED, DataConfig, field_info
from tmu_core.data import DATASETS
from tmu_core.errors import TMUError
from tmu_core.jobs.preview import cached_models
from tmu_core.models import MODELS
from tmu_core.tmu.method import THIN_TWIN
from ui import cache, nav, own_model, state, tables, widgets
from ui.text import plain

GALLERY_LIMIT = 600  # images shown per class (a CIFAR class has 4500: pick among the first ones)
GRID_COLUMNS = 6  # (id, image) pairs per row: 6 × (44 + 64) px fit 1280 px beside the sidebar (8 hid the last)
ID_WIDTH, IMAGE_WIDTH = 44, 64

st.title("Forget set")
st.caption("D_f is part of one class. Choose it here; the Run page launches it.")
# your own model, data and list of files (launched from here, followed on the Run page)
own_launched = own_model.entry()
d = state.draft()
before = copy.deepcopy(d)  # the last valid choice: kept if this one fails


def invalid(message: str, show=st.error) -> None:
    """Show why this choice cannot run, keep the last valid draft for the Run page, and stop."""
    show(message)
    state.reject(d, state.last_valid(before), message)
    st.stop()


def class_name(i: int) -> str:
    """'8' for digits' class 8 (its name is its number), '3 · cat' where the name says more."""
    return data.classes[i] if str(data.classes[i]) == str(i) else f"{i} · {data.classes[i]}"


FS_KEYS = ("fs_class", "fs_mode", "fs_count", "fs_count_class", "fs_fraction")  # widgets of the class and D_f


def dataset_changed() -> None:
    """Another dataset: its classes are others, so class, mode and hand-picked ids start afresh."""
    d.update(dataset=st.session_state["fs_dataset"], forget_class=0, mode="count", ids=[])
    for key in FS_KEYS:
        st.session_state.pop(key, None)


c1, c2, c3 = st.columns([2, 2, 1])
datasets = dict(DATASETS.describe())
state.bind("fs_dataset", "dataset", datasets)
d["dataset"] = c1.selectbox(
    "Dataset",
    list(datasets),
    key="fs_dataset",
    on_change=dataset_changed,
    help="digits is bundled and instant; the others need their files (or a download).",
)
c1.caption(plain(state.ui_message(datasets[d["dataset"]])))
models = dict(MODELS.describe())
state.bind("fs_model", "model", models)
d["model"] = c2.selectbox("Model", list(models), key="fs_model", help=models.get(d["model"]))
c2.caption(models[d["model"]])
state.bind("fs_seed", "seed")
d["seed"] = int(
    c3.number_input(
        "Seed",
        min_value=0,
        max_value=MAX_SEED,
        step=1,
        key="fs_seed",
        help=f"seeds the train/aux split, the forget set and all training (0 to {MAX_SEED})",
    )
)
with st.expander("Run settings: the twin's aux pool and the gold models", expanded=False):
    r1, r2 = st.columns(2)
    aux_field = field_info(DataConfig, "aux_fraction")
    state.bind("fs_aux_fraction", "aux_fraction")
    d["aux_fraction"] = float(
        r1.number_input(
            "Aux fraction",
            min_value=float(aux_field.min),
            max_value=float(aux_field.max),
            step=0.05,
            format="%.2f",
            key="fs_aux_fraction",
            help=f"{aux_field.help}: a larger share gives the twin more distinct images "
            "(fewer augmented copies) but trains the models on fewer",
        )
    )
    state.bind("fs_gold_seeds", "gold_seeds")
    d["gold_seeds"] = int(
        r2.number_input(
            "Gold models (K)",
            min_value=1,
            max_value=MAX_GOLD_SEEDS,
            step=1,
            key="fs_gold_seeds",
            help="K > 1 trains K-1 more gold models (other seeds): each D_f sample then gets p_i, the share of golds "
            "that get it right, and the run reports the golds' own spread (the ceiling). Each costs one training.",
        )
    )

if d["dataset"] not in state.BUNDLED:
    state.bind("fs_data_root", "data_root")
    required = d["dataset"] in state.FOLDER_REQUIRED
    d["data_root"] = st.text_input(
        "Data folder" + ("" if required else " (optional)"),
        key="fs_data_root",
        placeholder="/path/to/images" if required else f"empty: ./data/{d['dataset']}",
        help="a folder with train/ and test/ folders of class folders, or one folder of class folders (split by "
        "the seed)"
        if required
        else "where the dataset's files are, or are downloaded to when online",
    ).strip()
    if required and not d["data_root"]:
        invalid(
            "**imagefolder** reads your own images: enter their folder above, holding train/ and test/ "
            "folders of class folders (e.g. train/cat/*.png), or just class folders.",
            st.info,
        )
data_cfg = state.data_config(d)
try:
    data = cache.dataset(cache.as_json(data_cfg), d["seed"])
except TMUError as exc:
    invalid(f"**{d['dataset']}** is not available here: {state.ui_message(exc)}", st.warning)

counts = {c: len(data.class_ids(c)) for c in range(data.num_classes)}
state.bind("fs_class", "forget_class", counts)
c1, c2, c3 = st.columns([2, 2, 1])
c = c1.selectbox(
    "Forget class", list(counts), key="fs_class", format_func=lambda i: f"{class_name(i)} ({counts[i]} training images)"
)
if c != d["forget_class"]:
    d["ids"] = []  # hand-picked ids belong to one class
d["forget_class"] = c
state.bind("fs_mode", "mode", state.MODES)
d["mode"] = c2.radio(
    "Choose D_f by",
    state.MODES,
    key="fs_mode",
    horizontal=True,
    help="hand-pick: select rows (images) in the gallery below",
)
n = counts[c]
if d["mode"] == "count":
    d["count"] = min(int(d["count"]), n - 1)
    if "fs_count" not in st.session_state or st.session_state.get("fs_count_class") != (d["dataset"], c):
        st.session_state["fs_count"] = str(d["count"])  # seeded per visit and per class (a smaller class clamps it)
        st.session_state["fs_count_class"] = (d["dataset"], c)
    # A text field, not a number field: a cleared or mistyped number field silently snaps to its minimum.
    typed = c3.text_input(
        "Samples", key="fs_count", help=f"how many of the class's {n} images to forget (1 to {n - 1})"
    )
    count_error = widgets.whole_number_error(typed, 1, n - 1)
    if count_error:
        c3.error(f"{plain(count_error)}; still {d['count']}.", icon=":material/error:")
    else:
        d["count"] = int(typed.strip())
elif d["mode"] == "fraction":
    state.bind("fs_fraction", "fraction")
    d["fraction"] = float(c3.slider("Fraction", 0.01, 0.99, step=0.01, key="fs_fraction"))

try:
    train_cfg = state.train_config(d)
except TMUError as exc:
    invalid(state.ui_message(exc))
gallery = cache.class_gallery(cache.as_json(data_cfg), d["seed"], c, GALLERY_LIMIT)
st.session_state.setdefault("fs_pick_generation", 0)


def pick_key() -> str:
    """The gallery's key; a new generation redraws it with the draft's selection (after an undone pick)."""
    return f"fs_pick_{d['dataset']}_{d['seed']}_{c}_{st.session_state['fs_pick_generation']}"


def take_picks() -> None:
    """Selection callback: the ticked rows become D_f before the page reruns."""
    d["ids"] = sorted(int(gallery["id"].iloc[i]) for i in st.session_state[pick_key()].selection.rows)


def compute_preview():
    return cache.forget_preview(
        cache.as_json(data_cfg), cache.as_json(state.forget_spec(d)), cache.as_json(train_cfg), d["seed"]
    )


def thin_evidence(aux: dict, original_cached: bool) -> None:
    """Before launch: say when the twin will learn easy/hard from too little (under THIN_TWIN distinct images, or
    no hard example), and which setting helps."""
    distinct = min(aux["available"], aux["used"])
    problems = []
    if distinct < THIN_TWIN:
        problems.append(
            f"the twin will have only **{distinct} distinct aux images** (under {THIN_TWIN}): its "
            "easy/hard labels are thin evidence"
        )
    misses = cache.aux_pool_misses(cache.as_json(data_cfg), cache.as_json(train_cfg), d["seed"], c, original_cached)
    if misses == 0:
        problems.append(
            f"the original model gets all {aux['available']} aux pool images right, so **no hard "
            "example** is likely: TMU cannot learn what a hard sample looks like"
        )
    elif misses is None and distinct < THIN_TWIN:
        problems.append("with so few images a hard example (one the original gets wrong) is unlikely")
    if aux["capped"]:
        problems.append(
            f"Eq. 3 asks for {aux['requested']} aux images but the pool holds {aux['available']}; "
            f"augmentation is capped at {aux['max_factor']:g}× the pool, so D_a has {aux['used']} "
            f"({aux['augmented']} augmented copies)"
        )
    if problems:
        st.warning(
            "Thin evidence before launch: " + "; ".join(problems) + ". A larger **aux fraction** (Run "
            "settings above) or a smaller forget set would help; more gold models (K) show the spread TMU's "
            "labels are judged against.",
            icon=":material/warning:",
        )
    elif aux.get("augmented"):
        st.caption(f"D_a: {aux['available']} pool images and {aux['augmented']} augmented copies.")


preview, pick_error = None, None
if d["mode"] != "hand-pick" or d["ids"]:
    try:
        preview = compute_preview()
    except TMUError as exc:
        if d["mode"] != "hand-pick":
            invalid(state.ui_message(exc))
        # A hand-picked set that cannot run (all of the class, say): undo the pick, keep the gallery on screen
        # so it can be changed, and let the Run page name what was refused.
        bad = len(d["ids"])
        last = state.last_valid(before)
        same_class = (
            all(last.get(k) == d[k] for k in ("dataset", "seed", "forget_class")) and last["mode"] == "hand-pick"
        )
        d["ids"] = list(last["ids"]) if same_class else []
        reason = state.ui_message(exc).rstrip(".")
        pick_error = (
            f"{bad} hand-picked samples cannot be forgotten: {reason}. The selection is back "
            f"to the last valid one ({len(d['ids'])} samples)."
        )
        state.note_rejected(f"{bad} hand-picked samples of class {class_name(c)}", state.ui_message(exc))
        st.session_state["fs_pick_generation"] = st.session_state.get("fs_pick_generation", 0) + 1
        preview = compute_preview() if d["ids"] else None
if pick_error is None:
    state.accept(d)

m = st.columns(5)  # drawn even before anything is picked, so the gallery below does not jump
aux = preview.aux if preview is not None else {}
m[0].metric(
    "Forget set |D_f|", len(preview.forget_ids) if preview else "—", help="D_f: the samples of the class to forget"
)
m[1].metric(
    "Rest of the class |D_r^c|",
    preview.remain_class if preview else "—",
    help="D_r^c: the class's training samples that stay; the gold model still trains on them",
)
m[2].metric(
    "Twin set |D_a|, Eq. 3",
    aux.get("requested", "—"),
    help="Eq. 3 of the paper sizes the twin's forget set D_a so the twin forgets the same share of its class "
    "as D_f is of the real one: |D_a| = |D_f|·(|D_r^c|+|D_f|)/|D_r^c|",
)
m[3].metric(
    "Twin set used",
    aux.get("used", "—"),
    help=f"from the class's aux pool ({aux.get('available', '?')} images, never trained on)"
    + (f", {aux['augmented']} of them augmented copies" if aux.get("augmented") else ""),
)
if preview is not None:
    cached = [k for k, v in cached_models(data, data_cfg, train_cfg, d["seed"], preview.forget_ids).items() if v]
    m[4].metric(
        "Cached models",
        "both" if len(cached) == 2 else (cached[0] if cached else "none"),
        help="original and gold models already trained with this recipe are reused; "
        "missing ones are trained at the start of the run",
    )
    if not own_launched:  # right after a launch on the user's own model, a note about this forget set misleads
        thin_evidence(aux, "original" in cached)
    nav.link("run", "Continue: launch this forget set on the Run page")

st.caption(
    "D_f: the images to forget · D_r^c: the rest of the class, kept · D_a: held-out images of the class that "
    "play D_f in the twin problem, where TMU learns which forgotten images stay recognised (easy)."
)
st.subheader(f"Class {plain(class_name(c))}: {n} training images")
if n > GALLERY_LIMIT:
    st.caption(f"Showing the first {GALLERY_LIMIT} of {n}.")
if d["mode"] != "hand-pick":
    chosen = set(preview.forget_ids) if preview is not None else set()
    st.caption(
        f"Framed in indigo: the {len(chosen)} samples of D_f, each beside its sample id. Switch to hand-pick "
        "to choose them yourself."
    )
    grid = tables.image_grid(gallery, chosen, GRID_COLUMNS)
    config = {
        col: (
            st.column_config.TextColumn("id", width=ID_WIDTH)
            if col.startswith("id ")
            else st.column_config.ImageColumn(" ", width=IMAGE_WIDTH)
        )
        for col in grid.columns
    }
    st.dataframe(
        grid, key="fs_grid", hide_index=True, row_height=60, height=min(640, 38 + 60 * len(grid)), column_config=config
    )
    st.stop()

if pick_error:
    st.error(plain(pick_error), icon=":material/error:")
st.info(
    f"Tick the rows of the images to forget; they form D_f (at most {n - 1}: the gold model keeps at least one "
    "image of the class)."
)
rows = [i for i, sid in enumerate(gallery["id"]) if sid in set(d["ids"])]
event = st.dataframe(
    gallery[["id", "image"]],
    key=pick_key(),
    on_select=take_picks,
    selection_mode="multi-row",
    selection_default={"selection": {"rows": rows}},
    hide_index=True,
    row_height=56,
    height=560,
    column_config={
        "image": st.column_config.ImageColumn("image", width="small"),
        "id": st.column_config.NumberColumn("sample id", format="%d"),
    },
)
picked = sorted(int(gallery["id"].iloc[i]) for i in event.selection.rows)
if picked != d["ids"]:  # a selection set without the callback (e.g. through session state in a test)
    d["ids"] = picked
    st.rerun()
