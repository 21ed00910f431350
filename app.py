"""TMU dashboard: the router. Pages live in pages/, one script each; this file adds the shared sidebar.

Run with `make app` (or `streamlit run app.py`). The sidebar shows the compute device (and the Ray cluster
that runs go to, when TMU_RAY_ADDRESS is set) and the run the inspection pages look at.
"""
import streamlit as st

from tmu_core import store
from tmu_core.errors import TMUError
from tmu_core.jobs.launch import ray_address
from ui import cache, nav, state, tables

st.set_page_config(page_title="TMU dashboard", page_icon=":material/psychology:", layout="wide")
page = st.navigation(nav.sections())
cache.warm_umap(cache.root())  # the first UMAP map then loads compiled code instead of compiling it


def _pick_run() -> None:
    state.select_run(st.session_state["sidebar_run"])


with st.sidebar:
    address = ray_address()
    st.caption(f"Compute device: **{cache.device()}**" + (f" · runs go to Ray at **`{address}`**" if address else ""))
    infos = store.list_runs()
    run_ids = [r.run_id for r in infos]
    selected = state.selected_run_id()
    if run_ids:
        labels = {r.run_id: tables.run_label(r) for r in infos}  # the full id is on the Run page
        twice = {v for v in labels.values() if list(labels.values()).count(v) > 1}  # e.g. `--seeds 0 0` runs
        labels = {k: f"{v} · {k}" if v in twice else v for k, v in labels.items()}  # the widget maps a label back
        st.session_state["sidebar_run"] = selected
        st.selectbox("Selected run", run_ids, key="sidebar_run", format_func=labels.get, on_change=_pick_run,
                     placeholder="none finished yet", help="The run the audit, features, embeddings and alignment pages show "
                          "(dataset · forget class · |D_f| · last update).")
        if selected:
            st.caption(f"`{selected}`")
    else:
        st.caption("No runs yet: launch one on the Run page.")
    st.caption(f"Run store: `{store.runs_root()}`")

try:
    page.run()
except TMUError as exc:  # a missing or damaged file met by a page: its one-line reason, never a traceback
    st.error(str(exc))
