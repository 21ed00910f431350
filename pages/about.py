"""About TMU: the teaching page — the problem, the twin trick, the features, the pages; the digits demo."""
import streamlit as st

from tmu_core.jobs import launch
from tmu_core.errors import TMUError
from ui import nav, state

nav.ensure_router()

st.title("Twin Machine Unlearning")
st.caption("Aligning unlearning with retraining: forget the hard samples, keep the easy ones.")

col_text, col_demo = st.columns([2, 1])
with col_text:
    st.markdown(nav.help_text("about"))
with col_demo, st.container(border=True):
    st.markdown("**Try it**: forget 100 images of the digit 8 (about 80% of the class) and compare TMU "
                "with four baselines against the retrained gold model. On a laptop CPU the first results "
                "come in about a minute.")
    if st.button("Run the digits demo", key="about_demo", type="primary", icon=":material/play_arrow:"):
        try:
            run = launch.start_run(state.run_config(state.default_draft()))
        except TMUError as exc:
            st.error(str(exc))
        else:
            state.select_run(run.id)
            st.switch_page(nav.page("run"))
    st.caption("Or choose your own forget set:")
    nav.link("forget_set", "Forget set page")

st.image(str(nav.asset("twin_trick.svg")), caption="The real problem, its twin, and the transfer between them.")
st.markdown(nav.help_text("twin"))
st.markdown(nav.help_text("pages"))
st.caption("Paper: Twin Machine Unlearning (TMU). The diagram and texts are this project's own summary.")
