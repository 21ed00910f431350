"""Guided demo: a run (the bundled digits demo by default) told in six steps, each a chart from the run and two
sentences with its own numbers — for presenting TMU to a class. Presentation mode sets each step's text beside
its chart in larger type, so every step reads on a 1280×720 screen without scrolling."""

import streamlit as st

from tmu_core import demo
from tmu_core.evaluate.verdict import verdict as run_verdict
from tmu_core.methods import primary_method
from ui import cache, charts, nav, state, tables, verdict
from ui.text import plain

STEPS = (
    "1 · The forget set",
    "2 · The twin and its labels",
    "3 · The features",
    "4 · The predicted split",
    "5 · The unlearning",
    "6 · The alignment",
)
SOURCES = {"demo": "The digits demo (bundled)", "selected": "The selected run"}
PRESENT_CHART_HEIGHT = 340  # px: with the title, the step bar and the browser's own bars, inside 720 px
PRESENT_CSS = """<style>
.block-container {padding-top: 2.2rem; padding-bottom: 0;}
.block-container [data-testid="stMarkdown"] p {font-size: 1.3rem; line-height: 1.4;}
.block-container [data-testid="stMarkdown"] li {font-size: 1.15rem; line-height: 1.35;}
.block-container h1 {font-size: 1.6rem; padding: 0;}
.block-container h3 {font-size: 1.35rem; padding: 0 0 0.3rem 0;}
</style>"""

URL_STEP, URL_PRESENT = "step", "present"  # ?step=4&present=1: a reload (or a link) opens the same slide


def from_url() -> None:
    """A new session (a reload, a shared link) starts at the step and mode its address names."""
    step = st.query_params.get(URL_STEP, "")
    if "demo_step" not in st.session_state and step.isdigit() and 1 <= int(step) <= len(STEPS):
        st.session_state["demo_step"] = STEPS[int(step) - 1]
    if "demo_present" not in st.session_state:
        st.session_state["demo_present"] = st.query_params.get(URL_PRESENT) == "1"


def to_url(step: str, present: bool) -> None:
    number = str(STEPS.index(step) + 1)
    if st.query_params.get(URL_STEP) != number:
        st.query_params[URL_STEP] = number
    if present and st.query_params.get(URL_PRESENT) != "1":
        st.query_params[URL_PRESENT] = "1"
    elif not present and URL_PRESENT in st.query_params:
        del st.query_params[URL_PRESENT]


st.title("Guided demo")
from_url()
top = st.columns([1.6, 3, 2.4], vertical_alignment="center")
present = top[2].toggle(
    "Presentation mode",
    key="demo_present",
    help="larger text and darker chart labels, each step's chart beside its text",
)
if present:
    st.html(PRESENT_CSS)

# The bundled demo run: from the run store once installed (the About page's button), else read in place.
bundled, root = demo.RUN_ID, cache.root()
if not demo.installed():
    root = str(demo.bundle_root())
    if not demo.bundled():
        bundled = None
        st.warning(
            "The bundled demo is missing; regenerate it with `python -m tmu_core.demo`.", icon=":material/warning:"
        )
selected = state.selected_run_id()
st.session_state.setdefault("demo_source", "demo" if bundled else "selected")
if bundled and selected and selected != bundled:
    source = top[0].segmented_control(
        "Walk through",
        list(SOURCES),
        key="demo_source",
        format_func=SOURCES.get,
        required=True,
        label_visibility="collapsed",
    )
else:
    source = "demo" if bundled else "selected"
lead = None if present else st.container()  # the finding first; the evidence notes, folded, after it
with top[1] if present else st.container():  # the run's thin-evidence notes, folded to one line
    if source == "demo" and bundled:
        run_id = bundled
        metrics, samples = cache.metrics(root, run_id), cache.samples(root, run_id)
        state.show_evidence_warnings(metrics, fold=True)
    else:
        run, metrics, samples = state.require_tmu_results("there is no easy/hard split to walk through", fold=True)
        run_id, root = run.id, cache.root()
if lead is not None:
    lead.markdown(f"**The finding.** {plain(run_verdict(metrics).sentences()[0])}")

primary = primary_method()
tmu, models = tables.tmu_summary(metrics), tables.models_frame(metrics)
rows = models.set_index("model")
n_f, cls = metrics.forget_count, plain(metrics.forget_class_name)  # stored text: shown, never rendered
if not present:
    st.caption(
        f"Run `{run_id}`: {plain(metrics.dataset)}, forget class {cls}, |D_f| = {n_f}. Step through it; every "
        "number below is this run's."
        + (
            " Its results come with the dashboard; *Run it yourself* on the About page computes them again."
            if run_id == bundled
            else ""
        )
    )


def move(by: int) -> None:
    st.session_state["demo_step"] = STEPS[max(0, min(len(STEPS) - 1, STEPS.index(st.session_state["demo_step"]) + by))]


st.session_state.setdefault("demo_step", STEPS[0])
nav_cols = st.columns([2, 2, 8])  # at [1.5, 1.5, 9] "Back" read "B…" beside the sidebar at 1280 px
nav_cols[0].button(
    "Back",
    key="demo_back",
    on_click=move,
    args=(-1,),
    disabled=st.session_state["demo_step"] == STEPS[0],
    icon=":material/arrow_back:",
)
nav_cols[1].button(
    "Next",
    key="demo_next",
    on_click=move,
    args=(1,),
    disabled=st.session_state["demo_step"] == STEPS[-1],
    icon=":material/arrow_forward:",
)
step = nav_cols[2].radio("Step", STEPS, key="demo_step", horizontal=True, label_visibility="collapsed")
to_url(step, present)
if not present:
    st.subheader(step)
    text, chart = st.container(), st.container()
else:
    text, chart = st.columns([2, 3], vertical_alignment="top")
    text.subheader(step)


def show(fig, key: str) -> None:
    if present:
        fig = charts.presentation(fig, PRESENT_CHART_HEIGHT)
    chart.plotly_chart(fig, key=key)


gold_af = rows.loc["gold", "A_f"]
if step == STEPS[0]:
    text.markdown(
        f"We ask the model to forget **{n_f} training images of class {cls}**: the forget set D_f. The *gold* "
        f"model is retrained without them, and it still recognises **{gold_af:.1f}%** of them from the "
        f"rest of the class: it forgets only {tables.images_apart(100 - gold_af, n_f)} of the {n_f}. Good "
        f"unlearning should land there, not at 0%."
    )
    forget = tables.audit_frame(samples, "forget", cache.class_names(root, run_id))
    chart.dataframe(
        forget[["image", "id", "verdict"]],
        key="demo_forget",
        hide_index=True,
        row_height=72,
        height=PRESENT_CHART_HEIGHT if present else 400,
        column_config={"image": st.column_config.ImageColumn("image", width=64)},
    )
elif step == STEPS[1]:
    text.markdown(
        f"Which of them will gold still get right? We cannot ask gold without retraining, so TMU builds a "
        f"**twin**: {tmu.aux_count} held-out images of the class play D_f, and an original model that "
        f"never saw them labels them — **{tmu.aux_easy} easy** (still recognised) and "
        f"**{tmu.aux_hard} hard**."
    )
    aux = tables.feature_frame(samples, "aux", "truth")
    show(charts.feature_scatter(aux, "NF", "CF", "The twin's D_a: its easy and hard samples"), "demo_twin")
elif step == STEPS[2]:
    text.markdown("Each sample gets three numbers from the problem's original model:")
    text.markdown(nav.feature_text(short=present))
    if not present:
        text.markdown(
            "If easy samples sit apart from hard ones, a small classifier can learn the difference on the twin."
        )
    show(charts.feature_distributions(tables.feature_frame(samples, "aux", "truth")), "demo_features")
elif step == STEPS[3]:
    text.markdown(
        f"The classifier, trained on the twin, calls **{tmu.pred_easy} of D_f easy and {tmu.pred_hard} "
        f"hard**; gold's own verdict is {tmu.gold_easy} easy and {tmu.gold_hard} hard. Its easy/hard labels "
        f"match gold's on **{tmu.label_accuracy:.1f}%** of D_f, its *label accuracy* (calling everything easy "
        f"would score {tables.all_easy_baseline(tmu):.1f}%)."
    )
    show(charts.confusion_figure(tables.confusion_frame(tmu.confusion), tmu.label_accuracy), "demo_confusion")
elif step == STEPS[4]:
    others = [m for m in models["model"] if m not in ("original", "gold", primary)]
    text.markdown(
        f"TMU then forgets only the samples it called hard and keeps the easy ones. The original got "
        f"**{rows.loc['original', 'A_f']:.1f}%** of D_f right, gold **{gold_af:.1f}%**, TMU "
        f"**{rows.loc[primary, 'A_f']:.1f}%**"
        + (
            ", and the other methods " + ", ".join(f"{tables.short_label(m)} {rows.loc[m, 'A_f']:.1f}%" for m in others)
            if others
            else ""
        )
        + "."
    )
    show(charts.forget_accuracy_figure(models), "demo_unlearning")
else:
    gaps = (
        f"Alignment is the gap to gold, |Δ|: TMU is **{rows.loc[primary, 'abs_delta']:.1f} points** "
        f"({tables.images_text(rows.loc[primary, 'images'])}) from gold, the untouched original "
        f"**{rows.loc['original', 'abs_delta']:.1f}**."
    )
    text.markdown(  # presentation mode: the numbers only (the verdict below says the rest)
        gaps
        if present
        else gaps + " Gold itself moves by a few images from one training seed to the next, so one run names a "
        "method closest only when it beats every other, and doing nothing, by more than that. The *per-sample "
        "agreement* below asks whether a model gets the same images right as gold (both right or both wrong): a "
        "measure of the unlearned model, unlike step 4's label accuracy, which scores TMU's easy/hard labels. "
        "The Alignment page adds utility and the membership attack."
    )
    with text:
        v = verdict.show(metrics, "demo_verdict", compact=present)
    show(charts.delta_figure(models, v), "demo_alignment")
    if not present:
        with text:
            nav.link("alignment", "Open the Alignment page")
