"""Alignment: every method's A_f against gold's, |Δ|, utility, activation distance, MIA; sweep tables."""
import streamlit as st

import datetime as dt

from tmu_core import store
from tmu_core.data import class_ref
from tmu_core.errors import TMUError
from tmu_core.evaluate import tables as paper_tables
from tmu_core.jobs import launch
from tmu_core.methods import METHODS, display, ordered
from ui import cache, charts, nav, state, tables
from ui.text import plain

nav.ensure_router()

st.title("Alignment")
st.caption(nav.help_text("alignment"))


PCT = st.column_config.NumberColumn(format=tables.PERCENT_FORMAT)
DIST = st.column_config.NumberColumn(format=tables.DISTANCE_FORMAT)


SPECIAL = {"p": st.column_config.NumberColumn(format="%.2g", help="paired t-test, two-sided"),
           "t": st.column_config.NumberColumn(format="%.2f"), "n": st.column_config.NumberColumn(format="%d"),
           "runs": st.column_config.NumberColumn(format="%d"), "K": st.column_config.NumberColumn(format="%d")}


def number_formats(df, distance: bool = False) -> dict:
    """One decimal for every numeric column of a paper table (accuracies, |Δ|, MIA are %); three for distances;
    p-values in two significant digits, counts whole."""
    return {c: SPECIAL.get(c, DIST if distance else PCT) for c in df.columns
            if c != "class" and df[c].dtype.kind in "fi"}


def show_table1(row) -> None:
    """The paper's Table 1 is one wide row: split into accuracies and |Δ| so each fits the page."""
    deltas = ["class"] + [c for c in row.columns if c.endswith(("|Δ|", " agree"))]
    rest = [c for c in row.columns if c not in deltas[1:]]
    st.dataframe(row[rest], hide_index=True, key="align_table1", column_config=number_formats(row[rest]))
    st.dataframe(row[deltas], hide_index=True, key="align_table1_delta", column_config=number_formats(row[deltas]))


def show_run() -> None:
    run = state.require_complete_run()
    metrics = cache.metrics(cache.root(), run.id)
    state.evidence_warnings(metrics)
    models = tables.models_frame(metrics)
    st.caption(f"Run `{run.id}`: {plain(metrics['dataset'])}, {plain(metrics['model'])}, class "
               f"{plain(metrics['forget_class_name'])}, |D_f| = {metrics['forget_count']}, device {plain(metrics['device'])}")
    gold = models.set_index("model").loc["gold"]
    m = st.columns([1, 1, 2, 1.4])  # "tie: FT, NG, TMU" needs the room
    m[0].metric("Gold A_f (target)", f"{gold['A_f']:.1f}%")
    if "tmu" in metrics["models"]:
        m[1].metric("TMU |Δ|", f"{metrics['models']['tmu']['abs_delta']:.1f}")
    best, best_delta = tables.best_aligned(models)
    if best == "none":
        m[2].metric("Best aligned", "—", help="this run trained no unlearning method")
    else:
        m[2].metric("Best aligned", best, help=f"smallest |Δ|: {best_delta:.1f}; methods within one D_f image of it "
                                               "tie. " + ", ".join(f"{tables.short_label(n)} {tables.model_label(n)}"
                                                                  for n in models.loc[models["kind"] != "reference", "model"]))
    cost = tables.cost_text(metrics)
    if cost:
        m[3].metric("TMU time / gold's training time", f"{metrics['cost_ratio']:.2f}×", help=cost)
        st.caption(cost)
    note = tables.alignment_note(metrics)
    if note:
        st.info(f"**Why TMU is not the closest to gold here.** {note}", icon=":material/info:")

    if best == "none":
        st.info("This run trained only the original and gold models: there is no unlearning method to align. "
                "Launch a run with at least one method on the Run page.", icon=":material/info:")
        nav.link("run", "Go to the Run page")
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(charts.forget_accuracy_figure(models), key="align_af")
    if best != "none":
        c2.plotly_chart(charts.delta_figure(models), key="align_delta")
    st.plotly_chart(charts.utility_figure(models), key="align_utility")
    st.dataframe(models.drop(columns=["model", "kind"]), hide_index=True, key="align_table", column_config={
        "label": "model", **{c: st.column_config.NumberColumn(c, format=tables.PERCENT_FORMAT) for c in ("A_test", "A_r", "A_f")},
        "delta": st.column_config.NumberColumn("Δ = A_f − gold A_f", format="%+.1f"),
        "abs_delta": st.column_config.NumberColumn("|Δ|", format=tables.PERCENT_FORMAT),
        "images": st.column_config.NumberColumn("|Δ| in D_f images", format="%d",
                                                help="how many more or fewer D_f images it gets right than gold"),
        "activation_distance": st.column_config.NumberColumn("activation distance (L2)", format=tables.DISTANCE_FORMAT),
        "agreement": st.column_config.NumberColumn("per-sample agreement (%)", format=tables.PERCENT_FORMAT,
                                                   help="share of D_f where the model and gold are both right or both wrong"),
        "mia": st.column_config.NumberColumn("MIA (%)", format=tables.PERCENT_FORMAT),
        "mia_auc": st.column_config.NumberColumn("MIA attack AUC (%)", format=tables.PERCENT_FORMAT,
                                                 help="the attack's AUC on the data it was fitted on; near 50 it "
                                                      "cannot tell members at all and its MIA value means nothing"),
        "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
        "timing": st.column_config.TextColumn("seconds spent", help="a cached original or gold model was trained "
                                              "by an earlier run with the same recipe; this run only loaded it")})
    st.markdown("**This run as a row of the paper's Table 1** (accuracy %, |Δ| = |A_f − gold A_f|)")
    row = paper_tables.tables([metrics])["table1"]
    show_table1(row[~row["class"].map(tables.is_summary)])


def sweep_form() -> None:
    """Launch a sweep (classes x seeds x forget counts) on the Forget set page's dataset, in the background."""
    d = state.draft()
    data = cache.dataset(cache.as_json(state.data_config(d)), 0)
    names = [str(c) for c in data.classes]
    with st.expander(f"Launch a sweep on {d['dataset']}", expanded=not store.list_sweeps()):
        c1, c2, c3 = st.columns([3, 2, 2])
        classes = c1.multiselect("Forget classes", names, default=names[:2], key="align_sw_classes")
        seeds = c2.text_input("Seeds", "0 1 2", key="align_sw_seeds", help="whole numbers separated by spaces")
        counts = c3.text_input("Forget counts", "100", key="align_sw_counts",
                               help="|D_f| per class, e.g. 100 500 1000 for the forgetting-more-data curve")
        methods = st.multiselect("Methods", ordered(METHODS.names()), default=ordered(METHODS.names()),
                                 format_func=lambda n: display(n).label, key="align_sw_methods")
        where = f" on the Ray cluster at {launch.ray_address()}" if launch.ray_address() else ""
        if st.button(f"Launch sweep{where}", key="align_sw_launch", type="primary", icon=":material/play_arrow:"):
            try:
                seed_list, count_list = [int(x) for x in seeds.split()], [int(x) for x in counts.split()]
            except ValueError:
                st.error("Seeds and forget counts must be whole numbers separated by spaces.")
                return
            sweep_id = f"sweep-{d['dataset']}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
            try:
                sweep_id = launch.start_sweep(d["dataset"], [class_ref(names.index(c)) for c in classes], seed_list, count_list,
                                   methods, sweep_id, state.data_config(d).data_root).id
            except TMUError as exc:
                st.error(str(exc))
                return
            st.session_state["align_sw_running"] = (sweep_id, len(classes) * len(seed_list) * len(count_list))
            st.session_state["align_sweep"] = sweep_id
    if st.session_state.get("align_sw_running"):
        sweep_progress()


@st.fragment(run_every=2.0)
def sweep_progress() -> None:
    """Runs done of the launched sweep; the page redraws its tables when it ends."""
    sweep_id, planned = st.session_state["align_sw_running"]
    sweep = store.Sweep(sweep_id)
    try:
        done = sweep.results()
    except TMUError:
        done = {}
    n = len(done.get("results", [])) + len(done.get("failed", []))
    st.progress(min(1.0, n / planned), text=f"Sweep {sweep_id}: {n} of {planned} runs done")
    tail = sweep.log_tail(3)
    if n >= planned or (tail and "error" in tail.lower()):
        del st.session_state["align_sw_running"]
        if tail and n < planned:
            st.error(plain(tail))
        st.rerun(scope="app")


def show_sweeps() -> None:
    sweep_form()
    ids = store.list_sweeps()
    if not ids:
        st.caption("No sweeps yet. `python -m tmu_core sweep --dataset digits --classes all` runs every forget "
                   "class and writes the paper's tables; they appear here.")
        return
    sweep_id = st.selectbox("Sweep", ids, key="align_sweep")
    try:  # results.json is checked like metrics.json: a damaged one is said, not raised
        results = cache.sweep_results(cache.root(), sweep_id, store.Sweep(sweep_id).version())
    except TMUError as exc:
        st.error(plain(exc))
        return
    if not results:
        st.info("This sweep has no finished class yet.")
        return
    version = store.Sweep(sweep_id).version()
    tuning = cache.sweep_tuning_classes(cache.root(), sweep_id, version)
    frames = paper_tables.tables(results, tuning)
    st.caption(f"{len(results)} runs done (forget class × seed × |D_f|). Avg and 95% CI rows: mean and Student-t "
               "interval over these runs" + (f"; tuning classes {', '.join(map(str, tuning))} (used to choose "
                                             "defaults) are summarised apart from the held-out ones." if tuning else "."))
    st.plotly_chart(charts.sweep_delta_figure(tables.sweep_delta_long(frames["table1"])), key="align_sweep_chart")
    if "curve" in frames:
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts.forget_curve_figure(frames["curve"], "|Δ|"), key="align_curve_delta")
        c2.plotly_chart(charts.forget_curve_figure(frames["curve"], "agreement"), key="align_curve_agreement")
    for key, df in frames.items():
        st.markdown(f"**{paper_tables.TITLES.get(key, key)}**")
        st.dataframe(df, hide_index=True, key=f"align_sweep_{key}", column_config=number_formats(df, key == "table3"))
    st.download_button("Download the tables (Markdown)", paper_tables.to_markdown(frames, f"## Sweep {sweep_id}"),
                       file_name=f"{sweep_id}.md", key="align_sweep_download", icon=":material/download:")


tab_run, tab_sweeps = st.tabs(["Selected run", "Sweeps over forget classes"])
with tab_sweeps:
    show_sweeps()
with tab_run:
    show_run()
