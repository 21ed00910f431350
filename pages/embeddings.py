"""Embeddings: UMAP maps of penultimate activations of the original, gold and TMU models, D_f easy/hard on top:
one model at a time, or the three side by side in one aligned frame."""

import pandas as pd
import streamlit as st

from tmu_core.errors import TMUError
from tmu_core.jobs import embedding
from tmu_core.methods import primary_method
from ui import cache, charts, nav, state, tables
from ui.text import chart_text, plain

COLOR_BY = {"truth": "gold's verdict", "predicted": "TMU's prediction"}

st.title("Embeddings")
run = state.require_complete_run()
metrics = cache.metrics(cache.root(), run.id)
state.show_evidence_warnings(metrics)
samples = state.run_samples(run)
st.caption(nav.help_text("embeddings"))

models = cache.embedding_models(cache.root(), run.id)
primary = primary_method()
c1, c2, c3 = st.columns([3, 2, 2])
st.session_state.setdefault("emb_model", primary if primary in models else models[0])
gold_truth = tables.has_truth(samples, "forget")  # a run without gold has only TMU's prediction to colour D_f by
if not gold_truth:
    st.session_state["emb_color"] = "predicted"
st.session_state.setdefault("emb_color", "truth")
model = c1.radio("Model", models, key="emb_model", format_func=tables.model_label, horizontal=True)
color_by = c2.radio(
    "D_f easy/hard by",
    list(COLOR_BY),
    key="emb_color",
    format_func=COLOR_BY.get,
    horizontal=True,
    disabled=tables.tmu_summary(metrics) is None or not gold_truth,
)
show_aux = c3.toggle("Show D_a", key="emb_aux", help="the twin's aux samples (by the original model's verdict)")
zoom = c3.toggle("Zoom to the forget class", key="emb_zoom", help="show only the region of the forget class's samples")
side = c1.toggle(
    "Side by side: original, gold and TMU",
    key="emb_side",
    help="the three maps in one frame (each rotated and scaled onto the original's), on the same axes",
)
names = cache.class_names(cache.root(), run.id)

version = run.umap_version(model)
umap = cache.umap_map(cache.root(), run.id, model, version) if version else None


@st.fragment(run_every=1.0)
def wait_for_map(models: list[str]) -> None:
    if all(embedding.job_status(run, m)["state"] != "running" for m in models):
        st.rerun(scope="app")
    st.info(
        f"Computing the UMAP map of the {', '.join(tables.model_label(m) for m in models)} model"
        f"{'s' if len(models) > 1 else ''} in the background (a few seconds each once UMAP's code is compiled; "
        "stored with the run afterwards)…",
        icon=":material/hourglass_top:",
    )


def maps_or_stop(wanted: list[str]) -> None:
    """Stop the page with a wait, an error or a Compute button unless every map of `wanted` is stored."""
    missing = [m for m in wanted if not run.umap_version(m)]
    if not missing:
        return
    jobs = {m: embedding.job_status(run, m) for m in missing}
    if any(j["state"] == "running" for j in jobs.values()):
        wait_for_map([m for m, j in jobs.items() if j["state"] == "running"])
        st.stop()
    for m, j in jobs.items():
        if j["state"] == "failed":
            st.error(f"The last UMAP computation of the {tables.model_label(m)} model failed: {plain(j.get('error'))}")
    what = ", ".join(tables.model_label(m) for m in missing)
    st.write(f"No UMAP map of the {what} model{'s' if len(missing) > 1 else ''} yet for this run.")
    if st.button(
        "Compute the UMAP map" + ("s" if len(missing) > 1 else ""),
        key="emb_compute",
        type="primary",
        icon=":material/scatter_plot:",
    ):
        try:
            embedding.start(run, missing)
        except TMUError as exc:
            st.error(plain(exc))
        else:
            st.rerun()
    st.stop()


colour = color_by if tables.tmu_summary(metrics) is not None else "truth"
if not gold_truth:
    st.caption("This run has no gold model, so D_f has no gold verdict: its points show TMU's prediction.")
if side:
    trio = [m for m in ("original", "gold", primary) if m in models]
    maps_or_stop(trio)
    maps = cache.aligned_maps(cache.root(), run.id, tuple(trio), tuple(run.umap_version(m) for m in trio))
    frames = {m: tables.umap_frame(maps[m], samples, metrics.forget_class, colour, show_aux) for m in trio}
    every = pd.concat(frames.values(), ignore_index=True)
    st.caption(
        f"Forget class {plain(metrics.forget_class_name)}: the original still holds D_f inside its class; gold "
        "never saw it; TMU should look like gold. One frame: each map is rotated and scaled onto the "
        "original's, so the same place means the same neighbourhood."
    )
    for col, m in zip(st.columns(len(trio)), trio):
        col.plotly_chart(
            charts.umap_figure(frames[m], tables.model_label(m), zoom, 460, names, every, legend=m == trio[0]),
            key=f"emb_side_{m}",
        )
    st.stop()


if umap is None:
    maps_or_stop([model])

df = tables.umap_frame(umap, samples, metrics.forget_class, colour, show_aux)
title = f"UMAP of penultimate activations: {tables.model_label(model)} model (forget class {chart_text(metrics.forget_class_name)})"
plot, _ = st.columns([4, 1])  # equal axis scales: a narrower, taller plot gives the clusters room
with plot:
    event = st.plotly_chart(
        charts.umap_figure(df, title, zoom, class_names=names),
        key=f"emb_chart_{model}",
        on_select="rerun",
        selection_mode=("box", "lasso", "points"),
    )
picked = tables.selected_points(event.selection.points)
if not picked:
    st.caption("Hover for a sample's id and class; box- or lasso-select points to see their images.")
    st.stop()

st.subheader(f"{len(picked)} selected samples")
rows = []
for role in ("forget", "aux"):
    ids = {sid for sid, r in picked if r == role}
    part = tables.audit_frame(samples, role, cache.class_names(cache.root(), run.id))
    rows.append(part[part["id"].isin(ids)].assign(role=role))
remain = tuple(sorted(sid for sid, r in picked if r == "remain"))
if remain:
    rows.append(
        cache.training_images(*cache.run_data_config(cache.config(cache.root(), run.id)), remain).assign(
            role="remain", predicted="", verdict=""
        )
    )
shown = pd.concat(rows, ignore_index=True)[["image", "id", "role", "predicted", "verdict"]]
st.dataframe(
    shown,
    key="emb_selected",
    hide_index=True,
    row_height=56,
    column_config={"image": st.column_config.ImageColumn("image", width="small")},
)
