"""Run: launch the pipeline in a background process, follow it stage by stage, cancel it, open a finished run."""
import streamlit as st

from tmu_core import store
from tmu_core.jobs import launch
from tmu_core.errors import TMUError
from tmu_core.methods import METHODS, method_config
from ui import cache, nav, state, tables, widgets

nav.ensure_router()

POLL_SECONDS = 2.0  # a poll redraws the run list: ~0.1 s of server CPU on a laptop
ACTIVE = ("queued", "running")

st.title("Run")
d = state.draft()

st.subheader("Launch")
rejected = state.draft_error()
if rejected:
    st.warning(f"The Forget set page's last choice ({rejected['choice']}) is not valid: {rejected['error']}  \n"
               "This page launches the last valid setup instead, shown below.", icon=":material/warning:")
st.markdown(f"Will launch: {state.describe(d)}")
nav.link("forget_set", "Change the forget set")
with st.expander("Training recipe of the original and gold models"):
    try:
        base = state.train_config(d)
    except TMUError as exc:
        st.error(str(exc))
        st.stop()
    train_overrides = widgets.config_inputs(base, f"run_train_{d['dataset']}_", skip=("model",))
with st.expander("Methods and their settings"):
    st.session_state.setdefault("run_methods", METHODS.names())
    methods = st.multiselect("Methods", METHODS.names(), key="run_methods",
                             help="TMU and the paper's baselines; each is compared with the gold model")
    params = {}
    for tab, name in zip(st.tabs(methods) if methods else [], methods):
        with tab:
            st.caption(dict(METHODS.describe())[name])
            params[name] = widgets.config_inputs(method_config(name, d["dataset"]), f"run_{name}_{d['dataset']}_")
name = st.text_input("Run name (optional)", key="run_name", max_chars=60, help="becomes part of the run id")
if st.button("Launch run", key="run_launch", type="primary", icon=":material/play_arrow:"):
    try:
        run = launch.start_run(state.run_config(d, train_overrides, methods, params, name))
    except TMUError as exc:
        st.error(state.ui_message(exc))
    else:
        state.select_run(run.id)
        st.rerun()


def cancel(run_id: str) -> None:
    launch.cancel(store.open_run(run_id))


def show_progress(run_id: str, status: dict) -> None:
    box = st.status(f"{run_id} — {status.get('stage') or 'queued'}", state="running", expanded=True)
    message = status.get("message") if status.get("message") not in (None, "", "done") else ""
    box.progress(min(1.0, float(status.get("progress", 0.0))),
                 text=f"{100 * float(status.get('progress', 0.0)):.0f}% · {status.get('stage')} {message}")
    box.markdown(tables.stage_line(status))
    box.button("Cancel", key=f"run_cancel_{run_id}", on_click=cancel, args=(run_id,), icon=":material/stop:")


def show_selected(run: store.Run, info: store.RunInfo) -> None:
    """The selected run; `info` is its list entry, whose state reads 'damaged' for a broken stored file."""
    status = {"state": info.state, "error": info.error}
    st.markdown(f"Selected: **{run.id}** — {status.get('state')}")
    if status.get("state") == "complete":
        metrics = cache.metrics(cache.root(), run.id)
        result = metrics["models"]
        if metrics.get("diverged"):
            st.warning("Diverged (no results): " + "; ".join(metrics["diverged"].values()))
        if "tmu" in result:
            st.caption(f"gold A_f {result['gold']['acc_forget']:.1f}% · TMU A_f {result['tmu']['acc_forget']:.1f}% "
                       f"(|Δ| {result['tmu']['abs_delta']:.1f}) · TMU A_test {result['tmu']['acc_test']:.1f}%")
        for col, key in zip(st.columns(4), ("audit", "features", "embeddings", "alignment")):
            with col:
                nav.link(key)
    elif status.get("state") in ("failed", "interrupted", "damaged", "cancelled"):
        st.error(status.get("error") or status.get("state"))
        tail = run.log_tail()
        if tail:
            with st.expander("Last lines of the run's log"):
                st.code(tail, language=None)


def run_list(watched: list[str]) -> None:
    """Runs in progress, the run list and the selected run; polled while `watched` runs are going."""
    infos = store.list_runs()
    states = {r.run_id: r.state for r in infos}
    if any(states.get(r) not in ACTIVE for r in watched):
        st.rerun(scope="app")  # one of them ended: redraw the page, polling only what is left
    if watched:
        st.subheader("In progress")
        for run_id in watched:
            show_progress(run_id, store.open_run(run_id).status())
    st.subheader("Runs")
    if not infos:
        st.caption(f"No runs in `{store.runs_root()}` yet.")
        return
    frame = tables.runs_frame(infos)
    ids = list(frame["run"])
    current = [ids.index(r) for r in [state.selected_run_id()] if r in ids]
    # Keyed by the row order: rows move as runs update, and a stored row index must not then open another run.
    event = st.dataframe(frame, key=f"run_table_{hash(tuple(ids))}", on_select="rerun", selection_mode="single-row",
                         selection_default={"selection": {"rows": current}}, hide_index=True,
                         column_config={"progress": st.column_config.ProgressColumn("progress", format="percent",
                                                                                    min_value=0.0, max_value=1.0)})
    st.caption("Select a row to open that run in the other pages.")
    if event.selection.rows and ids[event.selection.rows[0]] != state.selected_run_id():
        state.select_run(ids[event.selection.rows[0]])
        st.rerun(scope="app")  # the sidebar, drawn before this page, shows the new selection too
    selected = {r.run_id: r for r in infos}.get(state.selected_run_id())
    if selected is not None:
        show_selected(store.open_run(selected.run_id), selected)


active = [r.run_id for r in store.list_runs() if r.state in ACTIVE]
st.fragment(run_every=POLL_SECONDS if active else None)(run_list)(active)
