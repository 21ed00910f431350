"""Alignment: every method's A_f against gold's, |Δ|, utility, activation distance, MIA; sweep tables."""

import datetime as dt

import pandas as pd
import streamlit as st

from tmu_core import store
from tmu_core.config import MAX_SEED
from tmu_core.data import class_ref
from tmu_core.errors import TMUError
from tmu_core.evaluate import paper_tables
from tmu_core.jobs import launch
from tmu_core.methods import METHODS, display, ordered, primary_method
from ui import cache, charts, nav, state, tables, verdict, widgets
from ui.text import plain

st.title("Alignment")
st.caption(nav.help_text("alignment"))


HELPS = {
    "p": "paired t-test over classes, two-sided",
    "p Holm": "Holm-corrected over this group's comparisons",
    "sign p": "exact two-sided sign test over classes",
    "sign p Holm": "Holm-corrected sign test",
}


def show_table1(row) -> None:
    """The paper's Table 1 is one wide row: split into accuracies and |Δ|, each in parts of at most eight columns,
    so none is clipped at 1280 px."""
    deltas = [c for c in row.columns if c.endswith(("|Δ|", " agree"))]
    rest = [c for c in row.columns if c not in deltas and c != "class"]
    for i, cols in enumerate(tables.column_chunks(rest) + tables.column_chunks(deltas)):
        part = row[["class", *cols]]
        widgets.text_table(part, key=f"align_table1_{i}")


def show_gold_free(run, metrics) -> None:
    """A run without a gold model (the user's own model, --gold none): what needs no gold, and why the rest is
    not shown."""
    tmu = tables.tmu_summary(metrics)
    primary = primary_method()
    if tmu is not None:
        m = st.columns(3)
        m[0].metric(
            "TMU's predicted A_f after removal",
            "—" if tmu.predicted_acc_forget is None else f"{tmu.predicted_acc_forget:.1f}%",
            help="TMU's forecast of a retrain's accuracy on the forgotten samples: the predicted-easy share",
        )
        if primary in metrics.models:
            m[1].metric("Achieved A_f", f"{metrics.models[primary].acc_forget:.1f}%", help="the unlearned model's")
            m[2].metric("TMU seconds", f"{metrics.models[primary].seconds:.1f}")
    st.info(
        tables.NO_GOLD.format(
            what="|Δ|, the per-sample agreement, the activation distance, the verdict and the "
            "paper's Table 1 (each compares with a retrain)"
        ),
        icon=":material/info:",
    )
    rows = [
        {
            "model": tables.model_label(name),
            "A_test": v.acc_test,
            "A_r": v.acc_remain,
            "A_f": v.acc_forget,
            "MIA": v.mia,
            "seconds": v.seconds,
            "timing": tables.timing_text(v),
        }
        for name, v in metrics.models.items()
    ]
    widgets.text_table(pd.DataFrame(rows), key="align_gold_free")
    state.run_downloads(run, metrics)


def show_run() -> None:
    run = state.require_complete_run()
    metrics = cache.metrics(cache.root(), run.id)
    state.show_evidence_warnings(metrics)
    if not tables.has_gold(metrics):
        show_gold_free(run, metrics)
        return
    models = tables.models_frame(metrics)
    st.caption(
        f"Run `{run.id}`: {plain(metrics.dataset)}, {plain(metrics.model)}, class "
        f"{plain(metrics.forget_class_name)}, |D_f| = {metrics.forget_count}, device {plain(metrics.device)}"
    )
    rows = models.set_index("model")
    m = st.columns(3)
    m[0].metric("Gold A_f (target)", f"{rows.loc['gold', 'A_f']:.1f}%")
    if (primary := primary_method()) in rows.index:
        m[1].metric("TMU |Δ|", f"{rows.loc[primary, 'abs_delta']:.1f}")
    cost = tables.cost_text(metrics)
    if cost:
        m[2].metric("Cost: TMU unlearning / gold training", f"{metrics.cost_ratio:.2f}×", help=cost)
        st.caption(cost)
    v = verdict.show(metrics, "align_verdict")
    note = tables.alignment_note(metrics)
    if note:
        st.info(f"**Why TMU is not the closest to gold here.** {plain(note)}", icon=":material/info:")

    if not v.has_methods:
        st.info(
            "This run trained only the original and gold models: there is no unlearning method to align. "
            "Launch a run with at least one method on the Run page.",
            icon=":material/info:",
        )
        nav.link("run", "Go to the Run page")
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(charts.forget_accuracy_figure(models), key="align_af")
    if v.has_methods:
        c2.plotly_chart(charts.delta_figure(models, v), key="align_delta")
    st.plotly_chart(charts.utility_figure(models), key="align_utility")
    # Two tables of at most eight columns each: one of thirteen is clipped at 1280 px (its last columns hidden).
    # As text (tables.readable): an absent value reads "—" with its reason on the header's hover, not "None".
    labels = {
        "label": ("model", None),
        "delta": ("Δ = A_f − gold A_f", None),
        "abs_delta": ("|Δ|", None),
        "images": ("|Δ| in D_f images", "how many more or fewer D_f images it gets right than gold"),
        "activation_distance": ("activation distance (L2)", None),
        "agreement": ("per-sample agreement (%)", "share of D_f where the model and gold are both right or both wrong"),
        "mia": ("MIA (%)", None),
        "mia_auc": (
            "MIA attack AUC (%)",
            "the attack's AUC on the data it was fitted on; near 50 it cannot tell members at all and its MIA value "
            "means nothing",
        ),
        "timing": (
            "seconds spent",
            "a cached original or gold model was trained by an earlier run with the same recipe; this run only "
            "loaded it",
        ),
    }
    for key, cols in tables.MODEL_TABLE_PARTS.items():
        text = tables.readable(models[list(cols)])
        why = tables.absent_help(text)
        config = {
            c: st.column_config.TextColumn(
                labels.get(c, (c, None))[0],
                help=" · ".join(h for h in (labels.get(c, (c, None))[1], why.get(c)) if h) or None,
            )
            for c in text.columns
        }
        st.dataframe(text, hide_index=True, key=f"align_table_{key}", column_config=config)
    st.markdown("**This run as a row of the paper's Table 1** (accuracy %, |Δ| = |A_f − gold A_f|)")
    row = paper_tables.tables([metrics])["table1"]
    show_table1(row[~row["class"].map(tables.is_summary)])


def sweep_inputs(
    classes: list[str], seeds: str, counts: str, methods: list[str], smallest: int | None
) -> tuple[list, list, list]:
    """(errors, seeds, forget counts) of the sweep form: every input checked before anything starts. `smallest`:
    the training images of the smallest chosen class (None with no class chosen: the counts are then checked
    once a class is)."""
    errors, seed_list, count_list = [], [], []
    if not classes:
        errors.append("choose at least one forget class")
    if not methods:
        errors.append("choose at least one method")
    checks = [("Seeds", seeds, 0, MAX_SEED, seed_list)]
    if smallest is not None:
        checks.append(("Forget counts", counts, 1, smallest - 1, count_list))
    for label, text, low, high, out in checks:
        parts = text.split()
        if not parts:
            errors.append(f"{label}: enter at least one whole number from {low} to {high}")
        for part in parts:
            why = widgets.whole_number_error(part, low, high)
            if why:
                errors.append(
                    f"{label}: {why[0].lower() + why[1:]}"
                    + (
                        f" (the smallest chosen class has {smallest} training images)"
                        if label == "Forget counts"
                        else ""
                    )
                )
            else:
                out.append(int(part))
    return errors, seed_list, count_list


def sweep_form() -> None:
    """Launch a sweep (classes x seeds x forget counts) on the Forget set page's dataset, in the background;
    inputs are checked first, and the new sweep is then the one shown."""
    d = state.draft()
    data = cache.dataset(cache.as_json(state.data_config(d)), d["seed"])
    names = [str(c) for c in data.classes]
    recipe = state.train_config(d)
    with st.expander(f"Launch a sweep on {d['dataset']}", expanded=not store.list_sweeps(started=True)):
        c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
        classes = c1.multiselect("Forget classes", names, default=names[:2], key="align_sw_classes")
        seeds = c2.text_input(
            "Seeds", "0 1 2", key="align_sw_seeds", help=f"whole numbers from 0 to {MAX_SEED}, separated by spaces"
        )
        counts = c3.text_input(
            "Forget counts",
            "100",
            key="align_sw_counts",
            help="|D_f| per class, e.g. 100 500 1000 for the forgetting-more-data curve",
        )
        epochs = int(
            c4.number_input(
                "Training epochs",
                min_value=1,
                max_value=1000,
                value=int(recipe.epochs),
                step=1,
                key="align_sw_epochs",
                help=f"epochs of each run's original and gold models ({d['dataset']}'s recipe: {recipe.epochs}); "
                "fewer make a quick sweep, with rougher models",
            )
        )
        # As on the Run page: the controls (random k, oracle labels) bound the methods; they are offered, not ticked.
        methods = st.multiselect(
            "Methods",
            ordered(METHODS.names()),
            default=[n for n in ordered(METHODS.names()) if display(n).kind == "method"],
            format_func=lambda n: display(n).label,
            key="align_sw_methods",
        )
        where = f" on the Ray cluster at {launch.ray_address()}" if launch.ray_address() else ""
        if st.button(f"Launch sweep{where}", key="align_sw_launch", type="primary", icon=":material/play_arrow:"):
            smallest = min((len(data.class_ids(names.index(c))) for c in classes), default=None)
            errors, seed_list, count_list = sweep_inputs(classes, seeds, counts, methods, smallest)
            if errors:
                st.error("Nothing was started: " + plain("; ".join(errors)) + ".", icon=":material/error:")
                return
            sweep_id = f"sweep-{d['dataset']}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
            try:
                sweep_id = launch.start_sweep(
                    d["dataset"],
                    [class_ref(names.index(c)) for c in classes],
                    seed_list,
                    count_list,
                    methods,
                    sweep_id,
                    state.data_config(d).data_root,
                    epochs=None if epochs == recipe.epochs else epochs,
                ).id
            except TMUError as exc:
                st.error(plain(state.ui_message(exc)))
                return
            st.session_state["align_sw_running"] = (sweep_id, len(classes) * len(seed_list) * len(count_list))
            st.session_state["align_sweep"] = sweep_id  # the selectbox below shows the sweep just launched
    if st.session_state.get("align_sw_running"):
        sweep_progress()


def sweep_runs(sweep_id: str) -> list:
    """The runs a sweep has started so far (named after it), oldest first."""
    return sorted((r for r in store.list_runs() if r.run_id.startswith(f"{sweep_id}-")), key=lambda r: r.updated)


def runs_progress_frame(runs) -> "pd.DataFrame":
    rows = []
    for r in runs:
        eta = store.open_run(r.run_id).status_model().eta_seconds if r.state in ("queued", "running") else None
        rows.append(
            {
                "run": r.run_id,
                "state": r.state,
                "stage": "" if r.state == "complete" else r.stage,
                "progress": r.progress,
                "time left": tables.duration(eta) or "",
                "error": r.error or "",
            }
        )
    return pd.DataFrame(rows, columns=["run", "state", "stage", "progress", "time left", "error"])


@st.fragment(run_every=2.0)
def sweep_progress() -> None:
    """The launched sweep: runs done of those planned, each started run's stage progress; the page redraws its
    tables when it ends."""
    sweep_id, planned = st.session_state["align_sw_running"]
    sweep = store.Sweep(sweep_id)
    try:
        done = sweep.results_model()
        n = len(done.results) + len(done.failed)
    except TMUError:  # not written yet (or being replaced): nothing counted so far
        n = 0
    runs = sweep_runs(sweep_id)
    running = next((r for r in runs if r.state in ("queued", "running")), None)
    part = running.progress if running else 0.0
    st.progress(
        min(1.0, (n + part) / planned),
        text=f"Sweep {sweep_id}: {n} of {planned} runs done"
        + (f"; {running.run_id} at {100 * part:.0f}% ({running.stage})" if running else ""),
    )
    if runs:
        st.dataframe(
            runs_progress_frame(runs),
            hide_index=True,
            key="align_sw_runs",
            column_config={
                "progress": st.column_config.ProgressColumn("progress", format="percent", min_value=0.0, max_value=1.0)
            },
        )
    tail = sweep.log_tail(3)
    if n >= planned or (tail and "error" in tail.lower()):
        del st.session_state["align_sw_running"]
        if tail and n < planned:
            st.error(plain(tail))
        st.rerun(scope="app")


def show_failed(failed: list[dict]) -> None:
    if failed:
        st.markdown(f"**Failed runs ({len(failed)})**, each with its stored reason")
        cols = [c for c in ("forget_class", "seed", "forget_count", "run_id", "error") if any(c in f for f in failed)]
        widgets.text_table(
            pd.DataFrame(failed)[cols],
            key="align_sweep_failed",
            column_config={"error": st.column_config.TextColumn("error", width="large")},
        )


def show_sweeps() -> None:
    sweep_form()
    ids = store.list_sweeps(started=True)
    if not ids:
        st.caption(
            "No sweeps yet. `python -m tmu_core sweep --dataset digits --classes all` runs every forget "
            "class and writes the paper's tables; they appear here."
        )
        return
    if st.session_state.get("align_sweep") not in ids:
        st.session_state.pop("align_sweep", None)
    sweep_id = st.selectbox("Sweep", ids, key="align_sweep")
    sweep = store.Sweep(sweep_id)
    stored, results = None, []
    if sweep.version() != "-":  # a results file: checked like metrics.json, a damaged one is said, not raised
        try:
            stored = sweep.results_model()
            results = cache.sweep_results(cache.root(), sweep_id, sweep.version())
        except TMUError as exc:
            st.error(plain(exc))
            return
    failed = [f.model_dump() for f in stored.failed] if stored else []
    if not results:
        running = st.session_state.get("align_sw_running", (None,))[0] == sweep_id
        if failed:
            st.error(f"No run of this sweep completed; {len(failed)} failed.", icon=":material/error:")
            show_failed(failed)
        elif not running:
            tail = sweep.log_tail(5)
            st.info("This sweep has no finished run yet." + ("" if not tail else " The end of its log:"))
            if tail:
                st.code(tail, language=None)
        return
    version = sweep.version()
    tuning = cache.sweep_tuning_classes(cache.root(), sweep_id, version)
    frames = paper_tables.tables(results, tuning)
    st.caption(
        f"{len(results)} runs done (forget class × seed × |D_f|). Avg and 95% CI rows: the class is the unit "
        "(mean of the per-class means, Student-t interval over classes; each row says how many classes and "
        "runs)"
        + (
            f"; tuning classes {', '.join(map(str, tuning))} (used to choose "
            "defaults) are summarised apart from the held-out ones."
            if tuning
            else "."
        )
    )
    show_failed(failed)
    st.plotly_chart(charts.sweep_delta_figure(tables.sweep_delta_long(frames["table1"])), key="align_sweep_chart")
    if "curve" in frames:
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts.forget_curve_figure(frames["curve"], "|Δ|"), key="align_curve_delta")
        c2.plotly_chart(charts.forget_curve_figure(frames["curve"], "agreement"), key="align_curve_agreement")
    for key, df in frames.items():
        st.markdown(f"**{paper_tables.TITLES.get(key, key)}**")
        first, rest = list(df.columns[:1]), list(df.columns[1:])  # the row label, then parts that fit 1280 px
        for i, cols in enumerate(tables.column_chunks(rest)):
            part = df[first + cols]
            widgets.text_table(
                part, key=f"align_sweep_{key}" + (f"_{i}" if i else ""), distance=key == "table3", helps=HELPS
            )
    st.download_button(
        "Download the tables (Markdown)",
        paper_tables.to_markdown(frames, f"## Sweep {sweep_id}"),
        file_name=f"{sweep_id}.md",
        key="align_sweep_download",
        icon=":material/download:",
    )


tab_run, tab_sweeps = st.tabs(["Selected run", "Sweeps over forget classes"], key="tab", bind="query-params")
with tab_sweeps:
    show_sweeps()
with tab_run:
    show_run()
