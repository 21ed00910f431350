"""About TMU: the teaching page — the problem, the twin trick, the features, the pages; the digits demo."""

import streamlit as st

from tmu_core import demo
from tmu_core.errors import TMUError
from tmu_core.jobs import launch
from ui import nav, state
from ui.text import plain

# Measured (benchmarks/demo_time.py: the demo's configuration with the bundle's original and gold cached, started as
# this button does) on a 2-core machine shared with other work, torch's default threads: 154 s at load average 8,
# 420 s at 16; both gave the bundle's numbers.
RUN_IT_YOURSELF = (
    "Recomputes the demo as a new run: the original and gold models come from the bundle, so only the seven "
    "unlearning methods train. Expect minutes on a CPU: on a 2-core machine shared with other work it took 154 s "
    "(load average 8) and 420 s (load 16); the busier the machine, the longer. Its numbers can differ from the "
    "bundle's by a few images: training depends on the number of CPU threads (sums are added in another order) "
    "and on kernels that are not deterministic, so another machine trains slightly different models."
)

st.title("Twin Machine Unlearning")
st.caption("Aligning unlearning with retraining: forget the hard samples, keep the easy ones.")

col_text, col_demo = st.columns([2, 1])
with col_text:
    st.markdown(nav.help_text("about"))
with col_demo, st.container(border=True):
    st.markdown(
        "**Try it**: forget 110 of the 125 training images of the digit 8 and compare TMU with six "
        "baselines against the retrained gold model. The demo's results come with the dashboard: they "
        "open at once."
    )
    if st.button("Open the digits demo", key="about_demo", type="primary", icon=":material/co_present:"):
        try:
            run = demo.install()
        except TMUError as exc:
            st.error(plain(exc))
        else:
            state.select_run(run.id)
            st.switch_page(nav.page("demo"))
    if st.button(
        "Run it yourself",
        key="about_demo_run",
        icon=":material/play_arrow:",
        help=RUN_IT_YOURSELF,
    ):
        try:
            demo.install()  # seeds the model cache with the bundled original and gold
            run = launch.start_run(demo.config())
        except TMUError as exc:
            st.error(plain(exc))
        else:
            state.select_run(run.id)
            st.switch_page(nav.page("run"))
    st.caption(
        "*Run it yourself* takes minutes on a CPU, and its numbers can differ from the bundle's by a few "
        "images (CPU threads, non-deterministic kernels: hover over the button for why). Or choose your own "
        "forget set:"
    )
    nav.link("forget_set", "Forget set page")

st.image(str(nav.asset("twin_trick.svg")), caption="The real problem, its twin, and the transfer between them.")
st.markdown(nav.help_text("twin").replace("{feature_definitions}", nav.feature_text()))
st.markdown(nav.help_text("pages"))
st.caption("Paper: Twin Machine Unlearning (TMU). The diagram and texts are this project's own summary.")
