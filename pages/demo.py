"""Guided demo: the selected run (the digits demo by default) told in six steps, each a chart from the run and
two sentences with its own numbers — for presenting TMU to a class."""
import streamlit as st

from ui import cache, charts, nav, state, tables
from ui.text import plain

nav.ensure_router()

STEPS = ("1 · The forget set", "2 · The twin and its labels", "3 · The features", "4 · The predicted split",
         "5 · The unlearning", "6 · The alignment")

st.title("Guided demo")
run, metrics, samples = state.require_tmu_results("there is no easy/hard split to walk through")
tmu, models = metrics["tmu"], tables.models_frame(metrics)
rows = models.set_index("model")
n_f, cls = metrics["forget_count"], plain(metrics["forget_class_name"])  # stored text: shown, never rendered
st.caption(f"Run `{run.id}`: {plain(metrics['dataset'])}, forget class {cls}, |D_f| = {n_f}. Step through it; every number "
           "below is this run's.")


def move(by: int) -> None:
    st.session_state["demo_step"] = STEPS[max(0, min(len(STEPS) - 1, STEPS.index(st.session_state["demo_step"]) + by))]


st.session_state.setdefault("demo_step", STEPS[0])
step = st.radio("Step", STEPS, key="demo_step", horizontal=True, label_visibility="collapsed")
back, nxt, _ = st.columns([1, 1, 6])
back.button("Back", key="demo_back", on_click=move, args=(-1,), disabled=step == STEPS[0], icon=":material/arrow_back:")
nxt.button("Next", key="demo_next", on_click=move, args=(1,), disabled=step == STEPS[-1], icon=":material/arrow_forward:")
st.subheader(step)

if step == STEPS[0]:
    st.markdown(f"We ask the model to forget **{n_f} training images of class {cls}**: the forget set D_f. The *gold* "
                f"model is retrained without them, and it still recognises **{rows.loc['gold', 'A_f']:.1f}%** of them "
                "from the rest of the class — so good unlearning should land there, not at 0%.")
    forget = tables.audit_frame(samples, "forget")
    st.dataframe(forget[["image", "id", "verdict"]], key="demo_forget", hide_index=True, row_height=72, height=400,
                 column_config={"image": st.column_config.ImageColumn("image", width=64)})
elif step == STEPS[1]:
    st.markdown(f"Which of them will gold still get right? We cannot ask gold without retraining, so TMU builds a "
                f"**twin**: {tmu['aux_count']} held-out images of the class play D_f, and an original model that never "
                f"saw them labels them — **{tmu['aux_easy']} easy** (still recognised) and **{tmu['aux_hard']} hard**.")
    aux = tables.feature_frame(samples, "aux", "truth")
    st.plotly_chart(charts.feature_scatter(aux, "NF", "CF", "The twin's D_a: its easy and hard samples"), key="demo_twin")
elif step == STEPS[2]:
    st.markdown("Each sample gets three numbers from the original model: how much noise (NF), how strong an attack "
                "(AF) and how much training (CF) it takes to flip it. Easy samples sit apart from hard ones, so a "
                "small classifier can learn the difference on the twin.")
    st.plotly_chart(charts.feature_distributions(tables.feature_frame(samples, "aux", "truth")), key="demo_features")
elif step == STEPS[3]:
    st.markdown(f"The classifier, trained on the twin, calls **{tmu['pred_easy']} of D_f easy and {tmu['pred_hard']} "
                f"hard**; gold's own verdict is {tmu['gold_easy']} easy and {tmu['gold_hard']} hard. Its labels agree "
                f"with gold on **{tmu['label_accuracy']:.1f}%** of D_f (calling everything easy would score "
                f"{tables.all_easy_baseline(tmu):.1f}%).")
    st.plotly_chart(charts.confusion_figure(tables.confusion_frame(tmu["confusion"]), tmu["label_accuracy"]),
                    key="demo_confusion")
elif step == STEPS[4]:
    others = [m for m in models["model"] if m not in ("original", "gold", "tmu")]
    st.markdown(f"TMU then forgets only the samples it called hard and keeps the easy ones. The original got "
                f"**{rows.loc['original', 'A_f']:.1f}%** of D_f right, gold **{rows.loc['gold', 'A_f']:.1f}%**, TMU "
                f"**{rows.loc['tmu', 'A_f']:.1f}%**" + (", and the other methods " + ", ".join(
                    f"{tables.short_label(m)} {rows.loc[m, 'A_f']:.1f}%" for m in others) if others else "") + ".")
    st.plotly_chart(charts.forget_accuracy_figure(models), key="demo_unlearning")
else:
    best, _ = tables.best_aligned(models)
    st.markdown(f"Alignment is the gap to gold, |Δ|: TMU is **{rows.loc['tmu', 'abs_delta']:.1f} points** "
                f"({tables.images_text(rows.loc['tmu', 'images'])}) from gold; the best aligned here is **{best}**. "
                "The Alignment page adds utility, activation distance and the membership attack.")
    st.plotly_chart(charts.delta_figure(models), key="demo_alignment")
    nav.link("alignment", "Open the Alignment page")
