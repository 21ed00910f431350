"""Embeddings: a UMAP map of penultimate activations of the original, gold or TMU model, D_f easy/hard on top."""
import pandas as pd
import streamlit as st

from tmu_core.jobs import embedding
from tmu_core.errors import TMUError
from ui import cache, charts, nav, state, tables

nav.ensure_router()

COLOR_BY = {"truth": "gold's verdict", "predicted": "TMU's prediction"}

st.title("Embeddings")
run = state.require_complete_run()
metrics = cache.metrics(cache.root(), run.id)
samples = cache.samples(cache.root(), run.id)
st.caption(nav.help_text("embeddings"))

models = cache.embedding_models(cache.root(), run.id)
c1, c2, c3 = st.columns([3, 2, 2])
st.session_state.setdefault("emb_model", "tmu" if "tmu" in models else models[0])
st.session_state.setdefault("emb_color", "truth")
model = c1.radio("Model", models, key="emb_model", format_func=tables.model_label, horizontal=True)
color_by = c2.radio("D_f easy/hard by", list(COLOR_BY), key="emb_color", format_func=COLOR_BY.get, horizontal=True,
                    disabled="tmu" not in metrics)
show_aux = c3.toggle("Show D_a", key="emb_aux", help="the twin's aux samples (by the original model's verdict)")
zoom = c3.toggle("Zoom to the forget class", key="emb_zoom", help="show only the region of the forget class's samples")

version = run.umap_version(model)
umap = cache.umap_map(cache.root(), run.id, model, version) if version else None


@st.fragment(run_every=1.0)
def wait_for_map(model: str) -> None:
    job = embedding.job_status(run, model)
    if job["state"] != "running":
        st.rerun(scope="app")
    st.info(f"Computing the UMAP map of the {tables.model_label(model)} model in the background "
            "(10-30 s on a CPU; it is stored with the run afterwards)…", icon=":material/hourglass_top:")


if umap is None:
    job = embedding.job_status(run, model)
    if job["state"] == "running":
        wait_for_map(model)
        st.stop()
    if job["state"] == "failed":
        st.error(f"The last UMAP computation failed: {job.get('error')}")
    st.write(f"No UMAP map of the {tables.model_label(model)} model yet for this run.")
    if st.button("Compute the UMAP map", key="emb_compute", type="primary", icon=":material/scatter_plot:"):
        try:
            embedding.start(run, model)
        except TMUError as exc:
            st.error(str(exc))
        else:
            st.rerun()
    st.stop()

df = tables.umap_frame(umap, samples, int(metrics["forget_class"]), color_by if "tmu" in metrics else "truth", show_aux)
title = f"UMAP of penultimate activations: {tables.model_label(model)} model (forget class {metrics['forget_class_name']})"
plot, _ = st.columns([4, 1])  # equal axis scales: a narrower, taller plot gives the clusters room
with plot:
    event = st.plotly_chart(charts.umap_figure(df, title, zoom), key=f"emb_chart_{model}", on_select="rerun",
                            selection_mode=("box", "lasso", "points"))
picked = tables.selected_points(event.selection.points)
if not picked:
    st.caption("Hover for a sample's id and class; box- or lasso-select points to see their images.")
    st.stop()

st.subheader(f"{len(picked)} selected samples")
rows = []
for role in ("forget", "aux"):
    ids = {sid for sid, r in picked if r == role}
    part = tables.audit_frame(samples, role)
    rows.append(part[part["id"].isin(ids)].assign(role=role))
remain = tuple(sorted(sid for sid, r in picked if r == "remain"))
if remain:
    rows.append(cache.training_images(*cache.run_data_config(cache.config(cache.root(), run.id)), remain)
                .assign(role="remain", predicted="", verdict=""))
shown = pd.concat(rows, ignore_index=True)[["image", "id", "role", "predicted", "verdict"]]
st.dataframe(shown, key="emb_selected", hide_index=True, row_height=56,
             column_config={"image": st.column_config.ImageColumn("image", width="small")})
