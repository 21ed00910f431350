"""Session state the pages share: the selected run and the draft forget set.

Widget keys are prefixed per page (fs_, run_, audit_, ...) and Streamlit drops a widget's key when its
page is not shown, so what must survive a page change lives in two plain keys: `run_id` and `draft`.
Every accessor sets its default with `session_state.setdefault`, so each page also runs on its own.
"""

from __future__ import annotations

import copy

import streamlit as st

from tmu_core import demo, store
from tmu_core.config import DataConfig, ForgetSpec, RunConfig
from tmu_core.data import class_ref
from tmu_core.data.recipes import default_train_config
from tmu_core.errors import TMUError
from tmu_core.store.schema import MetricsFile
from ui import cache, nav, tables
from ui.text import plain
from ui.widgets import widget_words

RUN = "run_id"
DRAFT = "draft"
DRAFT_VALID = "draft_valid"  # a copy of the draft as it was when last accepted
DRAFT_ERROR = "draft_error"  # the Forget set page's last choice, when it was invalid (the draft kept the one before)
MODES = ("count", "fraction", "hand-pick")
BUNDLED = ("digits",)  # datasets without files: no data folder to choose
FOLDER_REQUIRED = ("imagefolder",)


def default_draft() -> dict:
    """The digits demo's forget set (tmu_core.demo): 110 of class 8's 125 training images, so the retrained gold
    model misses about a sixth of them."""
    cfg = demo.config()
    return {
        "dataset": cfg.data.dataset,
        "model": cfg.train.model,
        "seed": cfg.seed,
        "forget_class": int(cfg.forget.forget_class),
        "mode": "count",
        "count": cfg.forget.forget_count,
        "fraction": 0.5,
        "ids": [],
        "data_root": "",
        "aux_fraction": cfg.data.aux_fraction,
        "gold_seeds": 1,
    }


URL_DRAFT = "draft"  # the forget set chosen, in the address (what differs from the default): a reload keeps it
_DRAFT_TYPES = {
    "dataset": str,
    "model": str,
    "seed": int,
    "forget_class": int,
    "mode": str,
    "count": int,
    "fraction": float,
    "ids": list,
    "data_root": str,
    "aux_fraction": float,
    "gold_seeds": int,
}


def draft_from_url() -> dict:
    """The default draft with the address's changes to it (fields of the wrong type, or unknown, are left out:
    the Forget set page checks the values themselves as it checks a choice made there)."""
    import json

    d = default_draft()
    try:
        given = json.loads(st.query_params.get(URL_DRAFT) or "{}")
    except ValueError:
        return d
    for key, kind in _DRAFT_TYPES.items():
        value = given.get(key) if isinstance(given, dict) else None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, kind) and not isinstance(value, bool):
            d[key] = [int(i) for i in value if isinstance(i, int)] if kind is list else value
    if d["mode"] not in MODES:
        d["mode"] = "count"
    return d


def draft_to_url(d: dict) -> None:
    """Keep the draft's changes from the default in the address (none: no parameter)."""
    import json

    base = default_draft()
    changed = {k: d[k] for k in _DRAFT_TYPES if k in d and d[k] != base.get(k)}
    text = json.dumps(changed, separators=(",", ":")) if changed else None
    if text is None:
        st.query_params.pop(URL_DRAFT, None)
    elif st.query_params.get(URL_DRAFT) != text:
        st.query_params[URL_DRAFT] = text


AUX_FRACTION = DataConfig().aux_fraction


def draft() -> dict:
    if DRAFT not in st.session_state:
        st.session_state[DRAFT] = draft_from_url()
    d = st.session_state[DRAFT]
    d.setdefault("data_root", "")  # a draft from before the data folder existed
    d.setdefault("aux_fraction", AUX_FRACTION)
    d.setdefault("gold_seeds", 1)
    return d


def data_config(d: dict) -> DataConfig:
    """The draft's DataConfig; the data folder counts only for datasets that read files."""
    root = "" if d["dataset"] in BUNDLED else str(d.get("data_root") or "").strip()
    return DataConfig(dataset=d["dataset"], data_root=root, aux_fraction=float(d.get("aux_fraction", AUX_FRACTION)))


def describe(d: dict) -> str:
    """The draft in one Markdown line: dataset, class, size of D_f, model, seed (and the data folder)."""
    size = {
        "count": f"{d['count']} samples",
        "fraction": f"{100 * d['fraction']:.0f}% of the class",
        "hand-pick": f"{len(d['ids'])} hand-picked samples",
    }[d["mode"]]
    folder = f" · data folder {plain(d['data_root'])}" if d.get("data_root") and d["dataset"] not in BUNDLED else ""
    extra = "".join(
        [
            f" · aux fraction {d['aux_fraction']:g}" if d.get("aux_fraction", 0.1) != AUX_FRACTION else "",
            f" · {d['gold_seeds']} gold models" if d.get("gold_seeds", 1) > 1 else "",
        ]
    )
    return (
        f"**{plain(d['dataset'])}**, forget class **{plain(d['forget_class'])}**: {size} · model `{d['model']}` · "
        f"seed {d['seed']}{folder}{extra}"
    )


def reject(d: dict, before: dict, error: str) -> None:
    """The Forget set page's choice `d` is invalid: remember it and why, and put the draft back to `before`
    (the last valid one), so the Run page launches that and can say so."""
    st.session_state[DRAFT_ERROR] = {"choice": describe(d), "error": error}
    d.clear()
    d.update(before)


def accept(d: dict | None = None) -> None:
    """The Forget set page's choice is valid: forget the last error and keep a copy of `d` as the last valid."""
    st.session_state.pop(DRAFT_ERROR, None)
    if d is not None:
        st.session_state[DRAFT_VALID] = copy.deepcopy(d)
        draft_to_url(d)


def last_valid(fallback: dict) -> dict:
    """The draft as it was when last accepted (`fallback` before any was). A gallery's selection callback
    changes the draft before the page runs, so the draft at the top of the page may already be invalid."""
    return copy.deepcopy(st.session_state.get(DRAFT_VALID) or fallback)


def note_rejected(choice: str, error: str) -> None:
    """Remember an invalid choice that the Forget set page undid itself, for the Run page to name."""
    st.session_state[DRAFT_ERROR] = {"choice": choice, "error": error}


def draft_error() -> dict | None:
    return st.session_state.get(DRAFT_ERROR)


def ui_message(text: str) -> str:
    """A core message (written for the CLI) worded for the dashboard: the --data-root flag is the Data folder field."""
    return widget_words(
        str(text)
        .replace("pass --data-root DIR", "enter its folder in the Data folder field")
        .replace("needs --data-root:", "needs a data folder (the Data folder field):")
        .replace("downloaded to --data-root", "downloaded to the data folder")
        .replace("--data-root", "the Data folder field")
    )


def bind(key: str, field: str, valid=None) -> None:
    """Seed a widget's key from the draft (once per visit of its page); `valid` resets a stale value."""
    d = draft()
    if key not in st.session_state or (valid is not None and st.session_state[key] not in valid):
        value = d[field]
        st.session_state[key] = value if valid is None or value in valid else list(valid)[0]


def forget_spec(d: dict) -> ForgetSpec:
    """The draft's forget set as a ForgetSpec (TMUError when invalid)."""
    if d["mode"] == "hand-pick":
        return ForgetSpec(forget_class=class_ref(d["forget_class"]), forget_ids=tuple(d["ids"]))
    if d["mode"] == "fraction":
        return ForgetSpec(forget_class=class_ref(d["forget_class"]), forget_fraction=float(d["fraction"]))
    return ForgetSpec(forget_class=class_ref(d["forget_class"]), forget_count=int(d["count"]))


def train_config(d: dict, overrides: dict | None = None):
    return default_train_config(d["dataset"]).model_copy(update={"model": d["model"], **(overrides or {})})


def run_config(
    d: dict, train_overrides: dict | None = None, methods=None, method_params: dict | None = None, name: str = ""
) -> RunConfig:
    """A RunConfig from the draft and the Run page's settings (validated by the config models)."""
    if d["mode"] == "hand-pick" and not d["ids"]:
        raise TMUError("no samples picked: select images in the Forget set page's gallery, or choose by count")
    if methods is not None and not list(methods):
        raise TMUError("no method chosen: pick at least one method (TMU or a baseline) to compare with gold")
    kw = {} if methods is None else {"methods": tuple(methods)}
    return RunConfig(
        data=data_config(d),
        forget=forget_spec(d),
        train=train_config(d, train_overrides),
        method_params=tuple((m, tuple(sorted(p.items()))) for m, p in (method_params or {}).items() if p),
        seed=int(d["seed"]),
        name=name.strip(),
        gold_seeds=int(d.get("gold_seeds", 1)),
        **kw,
    )


URL_RUN = "run"  # the selected run in the page's address (?run=<id>): it survives a reload and makes deep links


def select_run(run_id: str | None) -> None:
    st.session_state[RUN] = run_id
    _to_url(run_id)


def _to_url(run_id: str | None) -> None:
    if run_id is None:
        st.query_params.pop(URL_RUN, None)
    elif st.query_params.get(URL_RUN) != run_id:
        st.query_params[URL_RUN] = run_id


_RUN_LIST = "_run_list_this_rerun"


def share_run_list() -> list[store.RunInfo]:
    """Read the run list (every run's status, schema-checked) for this rerun: app.py calls it first, and the
    page takes the same list with `run_list` instead of reading it again."""
    st.session_state[_RUN_LIST] = infos = store.list_runs()
    return infos


def run_list(last: bool = False) -> list[store.RunInfo]:
    """The run list app.py read for this rerun (read now when there is none: a page run alone). The last reader of
    a rerun passes last=True and takes it away, so a fragment's rerun (a poll: app.py does not run) reads afresh."""
    infos = st.session_state.pop(_RUN_LIST, None) if last else st.session_state.get(_RUN_LIST)
    return store.list_runs() if infos is None else infos


def selected_run_id(infos: list[store.RunInfo] | None = None) -> str | None:
    """The selected run among `infos` (default: the run list read now): this session's choice, else the one in the
    address (a reload or a deep link), else (and when it has vanished) the newest complete run. Kept in the address
    too."""
    infos = store.list_runs() if infos is None else infos
    ids = {r.run_id for r in infos}
    current = st.session_state.get(RUN)
    if current is None and st.query_params.get(URL_RUN) in ids:
        current = st.query_params.get(URL_RUN)
    if current not in ids:
        current = next((r.run_id for r in infos if r.state == "complete"), None)
    st.session_state[RUN] = current
    _to_url(current)
    return current


def require_complete_run() -> store.Run:
    """The selected run when it is complete; otherwise say why, link to the Run page and stop the page."""
    run_id = selected_run_id()
    if run_id is None:
        st.info(
            "No finished run yet. Launch one on the Run page, or open the digits demo on the About page (its "
            "results come with the dashboard)."
        )
        nav.link("run", "Go to the Run page")
        st.stop()
    info = {r.run_id: r for r in store.list_runs()}.get(run_id)  # list_runs reads 'damaged' for broken files
    if info is None:
        st.stop()  # deleted since the line above: the next rerun picks another
    if info.state in ("queued", "running"):
        _wait_for(run_id)
        nav.link("run", "Go to the Run page")
        st.stop()
    if info.state != "complete":
        st.warning(
            f"Run `{run_id}` is {info.state}: {plain(info.error or 'no results')}. Choose another run on the Run page."
        )
        nav.link("run", "Go to the Run page")
        st.stop()
    return store.open_run(run_id)


POLL_SECONDS = 2.0


@st.fragment(run_every=POLL_SECONDS)
def _wait_for(run_id: str) -> None:
    """The selected run's progress, polled; the whole page reruns (and shows the results) once it ends."""
    info = {r.run_id: r for r in store.list_runs()}.get(run_id)
    if info is None or info.state not in ("queued", "running"):
        st.rerun(scope="app")
    st.info(
        f"Run `{run_id}` is {info.state} ({100 * info.progress:.0f}%, {plain(info.stage)}); its results appear here "
        "when it finishes (this page checks every few seconds).",
        icon=":material/hourglass_top:",
    )
    st.progress(min(1.0, float(info.progress)))


def require_tmu_results(missing: str, fold: bool = False):
    """(run, metrics, samples) of the selected complete run when it includes TMU; otherwise say so and stop.
    `fold`: its thin-evidence warnings in one line (presentation mode). metrics: the store's typed MetricsFile."""
    run = require_complete_run()
    metrics = cache.metrics(cache.root(), run.id)
    if tables.tmu_summary(metrics) is None:
        st.info(f"Run `{run.id}` did not include TMU, so {missing}.")
        st.stop()
    show_evidence_warnings(metrics, fold)
    return run, metrics, run_samples(run)


def split_metrics(columns, metrics: MetricsFile, threshold: str = "") -> None:
    """TMU's split and its forecast in three metrics, none needing gold: predicted easy / hard, the A_f it
    predicts for a retrain, and the A_f its unlearned model achieved."""
    from tmu_core.methods import primary_method
    from ui import tables

    tmu = tables.tmu_summary(metrics)
    columns[0].metric(
        "Predicted easy / hard",
        f"{tmu.pred_easy} / {tmu.pred_hard}",
        help="easy: a retrain would still classify it right (TMU keeps it); hard: it would not (TMU unlearns it)."
        + threshold,
    )
    columns[1].metric(
        "Predicted A_f after removal",
        "—" if tmu.predicted_acc_forget is None else f"{tmu.predicted_acc_forget:.1f}%",
        help="TMU's forecast of a retrain's accuracy on the forgotten samples: the predicted-easy share",
    )
    achieved = metrics.models.get(primary_method())
    columns[2].metric(
        "Achieved A_f",
        "—" if achieved is None else f"{achieved.acc_forget:.1f}%",
        help="the unlearned model's accuracy on the forgotten samples",
    )


def run_downloads(run: store.Run, metrics: MetricsFile, places=None) -> None:
    """Download buttons for what a user takes away from a run: the unlearned model (in their model's format on
    their own model, else the registry's state dict) and the audit table, one row per forgotten sample."""
    slots = places or st.columns(2)
    weights = run.unlearned_file(metrics.unlearned_weights)
    if weights is not None:
        slots[0].download_button(
            "Download the unlearned model",
            weights[1],
            file_name=f"{run.id}-{weights[0]}",
            mime="application/octet-stream",
            key=f"download_weights_{run.id}",
            icon=":material/download:",
        )
    if run.exists(store.AUDIT):
        slots[1].download_button(
            "Download the audit table (CSV)",
            store.csv_text(run.load_table(store.AUDIT)),
            file_name=f"{run.id}-audit.csv",
            mime="text/csv",
            key=f"download_audit_{run.id}",
            icon=":material/download:",
        )


def run_samples(run: store.Run):
    """The run's per-sample table with its images; a table whose ids do not fit the data is said, and the page stops."""
    try:
        return cache.samples(cache.root(), run.id)
    except TMUError as exc:
        st.error(f"Run `{run.id}` is damaged: {plain(exc)}. Choose another run on the Run page.")
        st.stop()


def show_evidence_warnings(metrics: MetricsFile, fold: bool = False) -> None:
    """TMU's thin-evidence warnings (a tiny or capped twin, no hard example, an adapted setting), in plain words;
    `fold`: one line that opens to show them."""
    tmu = tables.tmu_summary(metrics)
    texts = [ui_message(t) for t in (tmu.warnings if tmu else [])]
    if (fold or len(texts) > 2) and texts:  # many (one per class of a request): one line that opens
        with st.expander(
            f"Thin evidence: {len(texts)} warning{'s' if len(texts) > 1 else ''} about this run's twin",
            icon=":material/warning:",
        ):
            for text in texts:
                st.markdown(f"- {plain(text)}.")
        return
    for text in texts:
        st.warning(f"Thin evidence: {plain(text)}.", icon=":material/warning:")
