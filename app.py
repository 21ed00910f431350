"""TMU dashboard: the router. Pages live in pages/, one script each; this file adds the shared sidebar.

Run with `make app` (or `streamlit run app.py`). The sidebar shows the compute device (and the Ray cluster
that runs go to, when TMU_RAY_ADDRESS is set) and the run the inspection pages look at.
"""

import streamlit as st

from ui import nav  # streamlit alone: imported in a moment

st.set_page_config(page_title="TMU dashboard", page_icon=":material/psychology:", layout="wide")
# First, before the imports below (torch, plotly: seconds on a cold start). Streamlit reads a pages/ folder beside
# app.py as a legacy multipage app, listing its file names (app, about, ...) in the sidebar, until some session
# has run st.navigation (README, "The pages folder"): the sooner it runs, the sooner our navigation replaces them.
page = st.navigation(nav.sections())

from tmu_core import demo, store  # noqa: E402
from tmu_core.errors import TMUError  # noqa: E402
from tmu_core.jobs.launch import ray_address  # noqa: E402
from ui import cache, state, tables  # noqa: E402
from ui.text import plain  # noqa: E402

cache.warm_umap(cache.root())  # the first UMAP map then loads compiled code instead of compiling it
cache.preload(cache.as_json(demo.config().data), demo.config().seed)  # the demo's data, loaded before it is asked for


def _pick_run() -> None:
    state.select_run(st.session_state["sidebar_run"])


with st.sidebar:
    address = ray_address()
    st.caption(f"Compute device: **{cache.device()}**" + (f" · runs go to Ray at **`{address}`**" if address else ""))
    infos = state.share_run_list()  # the Run page reuses this list (it polls every 2 s)
    run_ids = [r.run_id for r in infos]
    selected = state.selected_run_id(infos)
    if run_ids:
        labels = {r.run_id: tables.run_label(r) for r in infos}  # the full id is on the Run page
        twice = {v for v in labels.values() if list(labels.values()).count(v) > 1}  # e.g. `--seeds 0 0` runs
        labels = {k: f"{v} · {k}" if v in twice else v for k, v in labels.items()}  # the widget maps a label back
        st.session_state["sidebar_run"] = selected
        st.selectbox(
            "Selected run",
            run_ids,
            key="sidebar_run",
            format_func=labels.get,
            on_change=_pick_run,
            placeholder="none finished yet",
            help="The run the audit, features, embeddings and alignment pages show "
            "(dataset · forget class · |D_f| · last update).",
        )
        if selected:
            st.caption(plain(selected))
    else:
        st.caption("No runs yet: launch one on the Run page.")
    st.caption(f"Run store: `{store.runs_root()}`")

try:
    page.run()
except TMUError as exc:  # a missing or damaged file met by a page: its one-line reason, never a traceback
    st.error(plain(exc))
