"""Alignment: every method's A_f against gold's, |Δ|, utility, activation distance, MIA; sweep tables."""
import streamlit as st

from tmu_core import runs, sweep
from ui import cache, charts, nav, state, tables

nav.ensure_router()

st.title("Alignment")
st.caption(nav.help_text("alignment"))


def show_run() -> None:
    run = state.require_complete_run()
    metrics = cache.metrics(cache.root(), run.id)
    models = tables.models_frame(metrics)
    st.caption(f"Run `{run.id}`: {metrics['dataset']}, {metrics['model']}, class {metrics['forget_class_name']}, "
               f"|D_f| = {metrics['forget_count']}, device {metrics['device']}")
    gold = models.set_index("model").loc["gold"]
    m = st.columns(4)
    m[0].metric("Gold A_f (target)", f"{gold['A_f']:.1f}%")
    if "tmu" in metrics["models"]:
        m[1].metric("TMU |Δ|", f"{metrics['models']['tmu']['abs_delta']:.1f}")
    best = models[~models["model"].isin(["original", "gold"])].sort_values("abs_delta").iloc[0]
    m[2].metric("Best aligned", best["label"], help=f"smallest |Δ|: {best['abs_delta']:.1f}")
    if metrics.get("cost_ratio") is not None:
        m[3].metric("TMU cost / retrain", f"{metrics['cost_ratio']:.2f}×", help="TMU's seconds over the gold model's")

    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(charts.forget_accuracy_figure(models), key="align_af")
    c2.plotly_chart(charts.delta_figure(models), key="align_delta")
    st.plotly_chart(charts.utility_figure(models), key="align_utility")
    st.dataframe(models.drop(columns="model"), hide_index=True, key="align_table", column_config={
        "label": "model", "delta": st.column_config.NumberColumn("Δ = A_f − gold A_f", format="%+.1f"),
        "abs_delta": st.column_config.NumberColumn("|Δ|", format="%.1f"),
        "activation_distance": st.column_config.NumberColumn("activation distance (L2)", format="%.4f"),
        "mia": st.column_config.NumberColumn("MIA (%)", format="%.1f"),
        "seconds": st.column_config.NumberColumn("seconds", format="%.1f")})
    st.markdown("**This run as a row of the paper's Table 1** (accuracy %, |Δ| = |A_f − gold A_f|)")
    row = sweep.tables([metrics])["table1"]
    st.dataframe(row[row["class"] != "Avg"], hide_index=True, key="align_table1")


def show_sweeps() -> None:
    ids = runs.list_sweeps()
    if not ids:
        st.caption("No sweeps yet. `python -m tmu_core sweep --dataset digits --classes all` runs every forget "
                   "class and writes the paper's tables; they appear here.")
        return
    sweep_id = st.selectbox("Sweep", ids, key="align_sweep")
    results_file = runs.sweep_dir(sweep_id) / "results.json"
    results = cache.sweep_results(cache.root(), sweep_id, results_file.stat().st_mtime)
    if not results:
        st.info("This sweep has no finished class yet.")
        return
    frames = sweep.tables(results)
    st.caption(f"{len(results)} forget classes done.")
    st.plotly_chart(charts.sweep_delta_figure(tables.sweep_delta_long(frames["table1"])), key="align_sweep_chart")
    for key, df in frames.items():
        st.markdown(f"**{sweep.TITLES.get(key, key)}**")
        st.dataframe(df, hide_index=True, key=f"align_sweep_{key}")
    st.download_button("Download the tables (Markdown)", sweep.to_markdown(frames, f"## Sweep {sweep_id}"),
                       file_name=f"{sweep_id}.md", key="align_sweep_download", icon=":material/download:")


tab_run, tab_sweeps = st.tabs(["Selected run", "Sweeps over forget classes"])
with tab_sweeps:
    show_sweeps()
with tab_run:
    show_run()
