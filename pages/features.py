"""Features: NF, AF, CF (and HNF, HM when the run used them) for easy vs hard on the twin's D_a and on D_f; a scatter of two; the ablation."""

import streamlit as st

from ui import cache, charts, nav, state, tables

SETS = {
    "aux": "D_a — the twin problem (what the classifier learned from)",
    "forget": "D_f — the real problem (where it was applied)",
}
COLOR_BY = {"truth": "true label (D_a: original's verdict, D_f: gold's)", "predicted": "TMU's prediction"}

st.title("Features")
run, metrics, samples = state.require_tmu_results("no features were computed")
tmu = tables.tmu_summary(metrics)  # TMU's report, typed (stored under the primary method's name)
st.caption(nav.help_text("features"))

c1, c2, c3 = st.columns([3, 2, 1])
st.session_state.setdefault("feat_set", "aux")
st.session_state.setdefault("feat_color", "truth")
role = c1.radio("Samples", list(SETS), key="feat_set", format_func=SETS.get)
color_by = c2.radio("Colour by", list(COLOR_BY), key="feat_color", format_func=COLOR_BY.get)
kind = c3.radio("Chart", ["violin", "histogram"], key="feat_kind")
if color_by == "truth" and not tables.has_truth(samples, role):
    st.caption("D_f has no true label in this run (it has no gold model): its points are coloured by TMU's prediction.")
df = tables.feature_frame(samples, role, color_by)
feats = tables.feature_columns(samples)
st.plotly_chart(
    charts.feature_distributions(df, kind, f"{SETS[role].split(' —')[0]}: {', '.join(feats)} by {color_by} label"),
    key="feat_dist",
)
if len(feats) > 3:
    st.caption(
        "HNF and HM come from the held-out network (trained on part of D_r only, it never saw D_a or D_f): "
        "NF in its embedding space, and its margin on the forget class."
    )

st.subheader("Two features against each other")
axes = [*feats, "p_easy"]
c1, c2 = st.columns(2)
st.session_state.setdefault("feat_x", "NF")
st.session_state.setdefault("feat_y", "AF")
x = c1.selectbox("x axis", axes, key="feat_x")
y = c2.selectbox("y axis", axes, key="feat_y")
event = st.plotly_chart(
    charts.feature_scatter(df, x, y),
    key=f"feat_scatter_{role}",
    on_select="rerun",
    selection_mode=("box", "lasso", "points"),
)
picked = {sid for sid, _ in tables.selected_points(event.selection.points)}
if picked:
    chosen = tables.audit_frame(samples, role, cache.class_names(cache.root(), run.id))
    st.dataframe(
        tables.for_display(chosen[chosen["id"].isin(picked)]),
        key="feat_selected",
        hide_index=True,
        row_height=56,
        column_config={"image": st.column_config.ImageColumn("image", width="small")},
    )
else:
    st.caption("Select points (box or lasso in the chart's toolbar) to see their images.")

st.subheader("Ablation: label accuracy by feature subset")
if not tables.has_gold(metrics):
    st.info(tables.NO_GOLD.format(what="the label accuracy of each feature subset"), icon=":material/info:")
elif not tmu.label_accuracy_by_features:
    st.info(
        "The feature ablation did not run in this run (it is an audit extra, off by default on your own model): "
        "run again with --tmu-ablation to see the label accuracy of each feature subset.",
        icon=":material/info:",
    )
else:
    ablation = tables.ablation_frame(metrics)
    c1, c2 = st.columns([1, 1])  # the table needs room for its three columns at 1280 px
    c1.plotly_chart(charts.ablation_figure(ablation), key="feat_ablation")
    c2.dataframe(
        tables.for_display(ablation),
        hide_index=True,
        key="feat_ablation_table",
        column_config={
            "features": st.column_config.TextColumn("features", width="medium"),
            "label_accuracy": st.column_config.NumberColumn("label accuracy (%)", format=tables.PERCENT_FORMAT),
        },
    )
    c2.caption(
        f"The last row, *{tables.BASELINE_ROW}*, calls every D_f sample easy without any feature: "
        f"{tables.all_easy_baseline(tmu):.1f}% of D_f is easy for the gold model. A feature subset "
        "helps only where it beats that."
    )
st.caption(f"D_a: {tmu.aux_easy} easy, {tmu.aux_hard} hard. " + tables.aux_sizing_text(tmu))
