"""Run: launch the pipeline in a background process, follow it stage by stage, cancel it, open a finished run."""

import streamlit as st

from tmu_core import store
from tmu_core.errors import TMUError
from tmu_core.jobs import launch
from tmu_core.methods import METHODS, display, method_config, primary_method
from tmu_core.store.schema import RunStatus
from ui import cache, nav, own_model, state, tables, verdict, widgets
from ui.state import run_downloads
from ui.text import plain

POLL_SECONDS = 2.0  # a poll redraws the run list: ~0.1 s of server CPU on a laptop
ACTIVE = ("queued", "running")

st.title("Run")
d = state.draft()
state.draft_to_url(d)  # a reload of this page launches the same forget set


def cancel(run_id: str) -> None:
    launch.cancel(store.open_run(run_id))


def show_progress(run_id: str, status: RunStatus) -> None:
    box = st.status(f"{run_id} — {status.stage or 'queued'}", state="running", expanded=True)
    box.progress(min(1.0, status.progress), text=tables.progress_text(status))
    box.markdown(tables.stage_line(status))
    box.button("Cancel", key=f"run_cancel_{run_id}", on_click=cancel, args=(run_id,), icon=":material/stop:")


def show_selected(run: store.Run, info: store.RunInfo | None = None) -> None:
    """The selected run; `info` is its list entry, whose state reads 'damaged' for a broken stored file."""
    info = info or {r.run_id: r for r in store.list_runs()}.get(run.id)
    status = info or run.status_model()  # the list entry and the status both have a state and an error
    state, error = status.state, status.error
    st.markdown(f"Selected: **{run.id}** — {state}")
    if state == "complete":
        metrics = cache.metrics(cache.root(), run.id)
        if metrics.own is not None:  # a run on the user's own model
            own_model.result_panel(run, metrics)
        else:
            result_card(run)
            run_downloads(run, metrics)
        diverged = metrics.diverged
        if diverged:
            st.warning("Diverged (no results): " + plain(widgets.widget_words("; ".join(diverged.values()))))
    elif state == "cancelled":
        st.info(
            f"Cancelled{': ' + plain(error) if error else ''}. Resume it to finish it: the "
            "same run, its cached models reused.",
            icon=":material/stop_circle:",
        )
        resume_button(run)
    elif state in ("failed", "interrupted", "damaged"):
        st.error(plain(widgets.widget_words(error or state)))  # a core message: its CLI flags named as widgets
        if state in launch.RESUMABLE:
            resume_button(run)
        tail = run.log_tail()
        if tail:
            with st.expander("Last lines of the run's log"):
                st.code(tail, language=None)


def resume(run_id: str) -> None:
    try:
        launch.resume(store.open_run(run_id))
    except TMUError as exc:
        st.session_state["run_resume_error"] = str(exc)


def resume_button(run: store.Run) -> None:
    st.button(
        "Resume this run",
        key=f"run_resume_{run.id}",
        on_click=resume,
        args=(run.id,),
        icon=":material/play_arrow:",
        help="execute the same run again (not a new one)",
    )
    if st.session_state.get("run_resume_error"):
        st.error(plain(widgets.widget_words(st.session_state.pop("run_resume_error"))))


def result_card(run: store.Run) -> None:
    """The run's result as the headline: gold's and TMU's A_f, |Δ| (in images too), and the verdict above the
    noise floor with the untouched original beside the methods."""
    metrics = cache.metrics(cache.root(), run.id)
    models = tables.models_frame(metrics)
    card = st.container(border=True, key="run_result")
    card.markdown(
        f"**Result** · {plain(metrics.dataset)}, forget class {plain(metrics.forget_class_name)}, "
        f"|D_f| = {metrics.forget_count}"
    )
    m = card.columns(3)
    rows = models.set_index("model")
    m[0].metric(
        "Gold A_f (the target)",
        f"{rows.loc['gold', 'A_f']:.1f}%",
        help="accuracy on D_f of the model retrained without it: what unlearning should reach",
    )
    if (primary := primary_method()) in rows.index:
        m[1].metric("TMU A_f", f"{rows.loc[primary, 'A_f']:.1f}%")
        m[2].metric(
            "TMU |Δ| to gold",
            f"{rows.loc[primary, 'abs_delta']:.1f}",
            help=f"|A_f(TMU) − A_f(gold)| in percentage points: {tables.images_text(rows.loc[primary, 'images'])}",
        )
    verdict.show(metrics, "run_verdict", card, table=False)
    c1, c2, c3 = card.columns(3)
    with c1:
        nav.link("audit", "Audit TMU's easy/hard labels")
    with c2:
        nav.link("alignment", "Compare every method with gold")
    with c3:
        nav.link("embeddings", "See the embeddings")


def live(watched: list[str]) -> None:
    """Runs in progress and the selected run (its result card once complete), at the top of the page so a
    launched run's progress is in view; polled while `watched` runs are going."""
    infos = {r.run_id: r for r in state.run_list(last=True)}  # this rerun's list; a poll reads it afresh
    going = {r for r, info in infos.items() if info.state in ACTIVE}
    if going != set(watched):
        # One of them ended: redraw the page (and its card), polling only what is left. Or one started that this
        # fragment does not follow (a Resume clicked in it reruns the fragment alone, with the poll it was
        # drawn with: none for a cancelled run): redraw the page, which follows it with a progress box.
        st.rerun(scope="app")
    for run_id in watched:
        show_progress(run_id, store.open_run(run_id).status_model())
    selected = state.selected_run_id(list(infos.values()))
    if selected and selected not in watched:
        show_selected(store.open_run(selected), infos[selected])


def run_table(infos: list[store.RunInfo]) -> None:
    """Every run in the store (`infos`); selecting a row opens that run in the other pages."""
    st.subheader("Runs")
    if not infos:
        st.caption(f"No runs in `{store.runs_root()}` yet.")
        return
    frame = tables.runs_frame(infos)
    ids = list(frame["run"])
    selected = state.selected_run_id(infos)
    current = [ids.index(r) for r in [selected] if r in ids]
    # Keyed by the row order: rows move as runs update, and a stored row index must not then open another run;
    # and by the selected run: a choice made in the sidebar is not undone by the row this table remembers.
    event = st.dataframe(
        frame,
        key=f"run_table_{hash((tuple(ids), selected))}",
        on_select="rerun",
        selection_mode="single-row",
        selection_default={"selection": {"rows": current}},
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn("progress", format="percent", min_value=0.0, max_value=1.0)
        },
    )
    st.caption("Select a row to open that run in the other pages.")
    if event.selection.rows and ids[event.selection.rows[0]] != selected:
        state.select_run(ids[event.selection.rows[0]])
        st.rerun(scope="app")  # the sidebar, drawn before this page, shows the new selection too


infos = state.run_list()  # app.py's list of this rerun; the fragment below takes it (a poll reads its own)
active = [r.run_id for r in infos if r.state in ACTIVE]
st.fragment(run_every=POLL_SECONDS if active else None)(live)(active)

st.subheader("Launch")
rejected = state.draft_error()
if rejected:
    choice = rejected["choice"]  # state.describe's Markdown, its user text escaped there
    st.warning(
        f"The Forget set page's last choice ({choice}) is not valid: {plain(rejected['error'].rstrip('.'))}.  \n"
        "This page launches the last valid setup instead, shown below.",
        icon=":material/warning:",
    )
st.markdown(f"Will launch: {state.describe(d)}")
nav.link("forget_set", "Change the forget set")
with st.expander("Training recipe of the original and gold models"):
    try:
        base = state.train_config(d)
    except TMUError as exc:
        st.error(plain(widgets.widget_words(exc)))
        st.stop()
    train_overrides = widgets.config_inputs(base, f"run_train_{d['dataset']}_", skip=("model",))
with st.expander("Methods and their settings"):
    # Controls (random_k, oracle_labels) are offered but not ticked by default: they bound, not compete.
    st.session_state.setdefault("run_methods", [n for n in METHODS.names() if display(n).kind == "method"])
    methods = st.multiselect(
        "Methods",
        METHODS.names(),
        key="run_methods",
        format_func=lambda n: display(n).label,
        help="TMU and the paper's baselines; each is compared with the gold model",
    )
    params = {}
    for tab, name in zip(st.tabs([display(m).label for m in methods]) if methods else [], methods):
        with tab:
            st.caption(plain(dict(METHODS.describe())[name]))
            params[name] = widgets.config_inputs(method_config(name, d["dataset"]), f"run_{name}_{d['dataset']}_")
if not methods:
    st.warning(
        "No method chosen: open *Methods and their settings* and pick at least one (TMU or a baseline) to "
        "compare with the gold model.",
        icon=":material/warning:",
    )
name = st.text_input(
    "Run name (optional)",
    key="run_name",
    max_chars=60,
    help="becomes part of the run id and names the run in the sidebar",
)
if st.button("Launch run", key="run_launch", type="primary", icon=":material/play_arrow:", disabled=not methods):
    try:
        run = launch.start_run(state.run_config(d, train_overrides, methods, params, name))
    except TMUError as exc:
        st.error(plain(state.ui_message(exc)))
    else:
        state.select_run(run.id)
        st.rerun()


run_table(infos)
