"""Easy/hard audit: D_f grouped by TMU's predicted label, each image marked with the gold model's verdict."""

import math

import streamlit as st

from ui import cache, charts, nav, state, tables
from ui.forecast import show_forecast
from ui.text import plain

ROW = 96  # row height (px) of the galleries: thumbnails large enough to tell a digit

st.title("Easy/hard audit")
run, metrics, samples = state.require_tmu_results("there are no easy/hard predictions to audit")
tmu = tables.tmu_summary(metrics)  # TMU's report, typed (stored under the primary method's name)
with st.expander("How to read this page"):
    st.markdown(nav.help_text("audit"))

st.caption(
    f"Run `{run.id}`: {plain(metrics.dataset)}, class {plain(metrics.forget_class_name)}, "
    f"|D_f| = {metrics.forget_count}"
)
baseline = tables.all_easy_baseline(tmu)
gold = tables.has_gold(metrics)
threshold = f" Threshold: p(easy) ≥ {tmu.threshold:.2f} is predicted easy." if tmu.threshold is not None else ""
if gold:
    m = st.columns(5)
    m[0].metric("Label accuracy", f"{tmu.label_accuracy:.1f}%", help="predicted easy/hard agrees with gold's verdict")
    m[1].metric(
        "'All easy' baseline",
        f"{baseline:.1f}%",
        help="the label accuracy of calling every sample easy (the share of D_f gold gets right): the "
        "classifier is only useful where it beats this",
    )
    m[2].metric("Predicted easy / hard", f"{tmu.pred_easy} / {tmu.pred_hard}")
    m[3].metric("Gold easy / hard", f"{tmu.gold_easy} / {tmu.gold_hard}", help="hard = the gold model gets it wrong")
    auc = tmu.auc_p_easy
    m[4].metric(
        "AUC of p(easy)",
        f"{auc / 100:.2f}" if auc is not None and math.isfinite(auc) else "—",
        help="how well p(easy) ranks gold-easy above gold-hard samples, from 0 to 1 (0.50 = chance; undefined "
        f"when all of D_f has one gold label).{threshold}",
    )
    gap = tmu.label_accuracy - baseline
    if math.isfinite(baseline) and gap < 0:
        st.warning(
            f"**TMU's labels do worse than calling every sample easy**: {tmu.label_accuracy:.1f}% against "
            f"{baseline:.1f}% ({-gap:.1f} points lower). Here the classifier hurts more than it helps.",
            icon=":material/warning:",
        )
    elif math.isfinite(baseline) and gap == 0:
        st.info(
            f"TMU's labels are only as good as calling every sample easy ({baseline:.1f}%).", icon=":material/info:"
        )
    else:
        st.caption(f"TMU's labels beat calling every sample easy by {gap:.1f} points.")
else:
    state.split_metrics(st.columns(3), metrics, threshold)
    st.info(
        tables.NO_GOLD.format(what="label accuracy, gold's verdicts and the agreement filters"), icon=":material/info:"
    )
fid = tmu.twin_fidelity
if fid and fid.twin_acc_aux is not None:
    f = st.columns(4)
    f[0].metric(
        "Twin M_t: accuracy on D_a",
        f"{fid.twin_acc_aux:.1f}%",
        help="how well the twin model fits its forget set D_a; it should mirror how M_o fits D_f",
    )
    f[1].metric("Twin M_t: loss on D_a", f"{fid.twin_loss_aux:.3f}")
    f[2].metric("Original M_o: accuracy on D_f", f"{fid.original_acc_forget:.1f}%")
    f[3].metric("Original M_o: loss on D_f", f"{fid.original_loss_forget:.3f}")
    if fid.twin_epochs is not None:
        st.caption(
            f"The twin trained {fid.twin_epochs:g} epochs"
            + (f"; {fid.bags} twins (bags) pooled, fidelity averaged over them" if fid.bags > 1 else "")
            + "."
        )
if fid and fid.step_choice:
    sc = fid.step_choice
    st.markdown(
        f"**The step chosen on the twin: {plain(sc.chosen)}.** Each candidate unlearned the twin's D_a "
        f"({sc.aux_count} samples) from M_t, as the split called them ({tables.number(sc.asked_acc_aux):.0f}% easy; "
        f"M_o gets {tables.number(sc.gold_acc_aux):.0f}% right); the twin's gold M_o is known, so each is scored "
        "against it. The configured step stays unless another agrees with M_o on more samples, or on as many "
        "with a clearly lower activation distance."
    )
    st.dataframe(tables.step_choice_table(sc), hide_index=True)
ens = metrics.gold_ensemble  # K > 1 gold models
if ens:
    st.markdown(
        f"**Against {ens.k} gold models** (same D_r, training seeds differ; p_i = share of them that "
        "get sample i right)"
    )
    e = st.columns(4)
    e[0].metric(
        "Label accuracy vs p_i",
        f"{tables.number(tmu.soft_label_accuracy):.1f}%",
        help="expected agreement with a fresh gold: mean of p_i where predicted easy, 1 − p_i where hard",
    )
    loo = ens.ceiling_loo  # runs made before it was stored have only the plug-in ceiling
    e[1].metric(
        "Ceiling (leave-one-gold-out)" if loo is not None else "Ceiling (plug-in, reads high at small K)",
        f"{tables.number(loo if loo is not None else ens.ceiling):.1f}%",
        help="each gold predicted by the majority of the others: the label accuracy a predictor can expect "
        f"against a gold it did not see. The plug-in mean(max(p_i, 1 − p_i)) reads {tables.number(ens.ceiling):.1f}%: "
        "with few golds it is too high (75% where the true p_i is 0.5 and K = 3)",
    )
    e[2].metric(
        "Gold-vs-gold agreement",
        f"{tables.number(ens.gold_agreement):.1f}%",
        help="how often two golds agree on a sample (both right or both wrong), averaged over pairs",
    )
    soft_auc = tmu.soft_auc_p_easy
    e[3].metric(
        "AUC of p(easy) vs p_i",
        f"{soft_auc:.1f}" if soft_auc is not None and math.isfinite(soft_auc) else "—",
        help="pairs weighted by p_i (easy) and 1 − p_j (hard); 50 = chance",
    )
show_forecast(tmu, metrics)


def table_height(rows: int) -> int:
    """Pixels for a table of ROW-px rows under its 35-px header: exactly its rows (no blank one below the
    last), at most 7 and a half (the half says it scrolls)."""
    return 38 + (ROW * rows if rows <= 7 else ROW * 7 + ROW // 2)


left, right = st.columns([1, 2]) if gold else (None, st.container())
if gold:
    left.plotly_chart(
        charts.confusion_figure(tables.confusion_frame(tmu.confusion), tmu.label_accuracy), key="audit_confusion"
    )
with right:
    st.markdown("**Filters**")
    f1, f2, f3 = st.columns(3)
    st.session_state.setdefault("audit_pred", ["easy", "hard"])
    st.session_state.setdefault("audit_truth", ["easy", "hard"])
    predicted = f1.multiselect("Predicted", ["easy", "hard"], key="audit_pred")
    truth = f2.multiselect("Gold truth", ["easy", "hard"], key="audit_truth") if gold else ["easy", "hard"]
    disagree = (
        f3.toggle("Disagreements only", key="audit_disagree", help="prediction differs from gold's verdict")
        if gold
        else False
    )
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Download the per-sample table (CSV)",
        tables.samples_csv(samples),
        file_name=f"{run.id}-samples.csv",
        mime="text/csv",
        key="audit_download",
        icon=":material/download:",
    )
    state.run_downloads(run, metrics, (d2, d3))

view = tables.filter_audit(
    tables.audit_frame(samples, "forget", cache.class_names(cache.root(), run.id)), predicted, truth, disagree
)
config = {
    "image": st.column_config.ImageColumn("image", width=ROW - 8),
    # green, the colour of easy everywhere: a full bar (1.00) is a sure "easy", never red
    "p_easy": st.column_config.ProgressColumn(
        "p(easy)", min_value=0.0, max_value=1.0, format="%.2f", color=charts.EASY
    ),
    "agree": st.column_config.TextColumn("agrees", width="small"),
    "p_gold": st.column_config.ProgressColumn(
        "p_i (golds right)",
        min_value=0.0,
        max_value=1.0,
        format="%.2f",
        color=charts.EASY,
        help="share of the gold models that classify this sample correctly; the verdict is the run's own gold",
    ),
    "augmented": st.column_config.TextColumn("augmented", width="small"),
    **{f: st.column_config.NumberColumn(f, format="%.3g") for f in tables.FEATURES},
}
if not predicted or not truth:
    missing = " and ".join(n for n, v in (("Predicted", predicted), ("Gold truth", truth)) if not v)
    st.info(
        f"No samples shown: the {missing} filter has nothing ticked. Choose easy, hard or both there.",
        icon=":material/filter_alt_off:",
    )
for label in ("hard", "easy"):
    part = view[view["predicted"] == label].drop(columns=["predicted", "truth"])
    if label not in predicted or not truth:
        continue
    title = "Not called hard, for want of a hard twin example" if tmu.undecided else f"Predicted {label}"
    st.subheader(f"{title}: {len(part)} sample{'s' if len(part) != 1 else ''}")
    if len(part):
        if "agree" in part:
            st.caption(f"{int((~part['agree']).sum())} of them disagree with the gold model.")
        st.dataframe(
            tables.for_display(part),
            key=f"audit_gallery_{label}",
            column_config=config,
            hide_index=True,
            row_height=ROW,
            height=table_height(len(part)),
        )
    else:
        why = [f"gold truth {', '.join(truth)}"] if len(truth) < 2 else []
        if disagree:
            why.append("disagreements only")
        st.caption(
            f"None: no sample predicted {label} matches "
            + (" and ".join(why) if why else "these filters")
            + (f" (TMU predicted {label} for {getattr(tmu, f'pred_{label}')} samples in all)." if why else ".")
        )

with st.expander(f"The twin's D_a: {tmu.aux_count} samples the classifier learned from"):
    st.caption(
        tables.aux_sizing_text(tmu) + " Labels: the original model's verdict; augmented copies show their source image."
    )
    aux = tables.audit_frame(samples, "aux", cache.class_names(cache.root(), run.id))
    aux_config = {
        **config,
        "id": st.column_config.NumberColumn(
            "D_a index", format="%d", help="position in D_a (not a training id); its image is training image source_id"
        ),
    }
    st.dataframe(
        tables.for_display(aux),
        key="audit_aux",
        column_config=aux_config,
        hide_index=True,
        row_height=ROW,
        height=table_height(len(aux)),
    )
