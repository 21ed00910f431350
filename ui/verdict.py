"""The verdict section every page shows (Run results card, Alignment, guided demo), drawn by one function so the
pages cannot disagree: which method is closest to gold above the noise floor (tmu_core.evaluate.verdict), the
untouched original as a candidate, the ranking on |Δ| with per-sample agreement and activation distance beside
it, and the controls listed apart (they never win and never define a tie)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tmu_core.evaluate.verdict import Verdict, verdict
from tmu_core.store.schema import MetricsFile

from .tables import absent_help, model_label, readable

HELP = (
    "A method is closest to gold only when its |Δ| beats every other method's and the untouched original's by "
    "more than the noise floor. A method's floor is the larger of the spread gold itself shows (its K models' "
    "A_f range, or a binomial spread of about 1.15·sqrt(|D_f|·p·(1−p)) when the run has one gold) and the "
    "method's own rerun spread (measured with the original and gold fixed). Per-sample agreement has its own "
    "floor, from how often two golds disagree. Controls (random k, oracle labels) never take part."
)
SOURCE = {"gold": "gold's spread", "default": "default (one gold)", "rerun": "its own rerun"}


STANDING_HELP = (
    "closest: closest to gold by more than the noise floor · tie: within the noise floor of the smallest |Δ| · "
    "control †: a bound, not ranked"
)


AGREEMENT_HELP = (
    "per-sample agreement: the share of D_f where the model and gold are both right or both wrong (not TMU's "
    "label accuracy, which scores its easy/hard labels)"
)
LABELS = {  # short headers: the table must fit 1280 px beside the sidebar; each header's help says it in full
    "|Δ| in images": "|Δ| images",
    "agreement": "per-sample agr. %",
    "activation distance": "act. distance",
    "noise floor": "noise floor",
}


def verdict_frame(v: Verdict) -> pd.DataFrame:
    """One row per candidate (ranked on |Δ|), then the controls: its standing ('closest', 'tie' within the noise
    floor, 'control †') right after its name, where a narrow table still shows it; |Δ| in points and images,
    per-sample agreement, activation distance, its noise floor and where that comes from (gold's spread, its own
    rerun, the default)."""
    rows = []
    for r in v.rows:
        if r.kind == "control":
            standing = "control †"
        elif r.name == v.winner:
            standing = "closest"
        elif r.name in v.leaders:
            standing = "tie"
        else:
            standing = ""
        rows.append(
            {
                "model": model_label(r.name) + (" (did nothing)" if r.name == "original" else ""),
                "standing": standing,
                "|Δ|": r.abs_delta,
                "|Δ| in images": r.images if v.forget_count else None,
                "agreement": r.agreement,
                "activation distance": r.activation_distance,
                # one column, not two: at 1280 px a ninth column was hidden
                "noise floor": (
                    f"{r.floor:.0f} image{'' if round(r.floor) == 1 else 's'} · "
                    if v.forget_count and r.floor is not None
                    else ""
                )
                + SOURCE.get(r.floor_source, r.floor_source),
            }
        )
    return pd.DataFrame(rows)


def show(metrics: MetricsFile, key: str, container=None, table: bool = True, compact: bool = False) -> Verdict:
    """Draw the verdict of a run (metrics.json) into `container` (default: the page); returns it. `compact`
    (presentation mode): the headline and its first sentence, the reasons and the table folded below them."""
    v = verdict(metrics)
    box = (container or st).container(border=True, key=key)
    box.metric("Closest to gold", v.headline(), help=HELP)
    sentences = v.sentences()
    if compact:  # the headline alone; the sentences and the table one click away
        box = box.expander("Why, and every model's numbers")
    if v.original_ties:  # the plain warning the reader must not miss
        box.warning(sentences[0] + " " + next(s for s in sentences if "doing nothing" in s), icon=":material/balance:")
        rest = [s for s in sentences[1:] if "doing nothing" not in s]
    else:
        box.markdown(sentences[0])
        rest = sentences[1:]
    box.caption(" ".join(rest))
    if table and v.has_methods:
        frame = verdict_frame(v)
        text = readable(frame.drop(columns=["activation distance"])).assign(
            **{"activation distance": readable(frame[["model", "activation distance"]], distance=True).iloc[:, 1]}
        )
        why = absent_help(text)
        helps = {
            "|Δ| in images": "|Δ| as a number of D_f images: how many more or fewer gold gets right",
            "activation distance": "activation distance to gold on D_f (mean L2 between softmax outputs)",
            "noise floor": "the method's noise floor in D_f images, and where it comes from",
            "standing": STANDING_HELP,
            "|Δ|": "|A_f(model) − A_f(gold)| in percentage points of D_f; lower is closer",
            "agreement": AGREEMENT_HELP,
        }
        with box:
            st.dataframe(
                text,
                hide_index=True,
                key=f"{key}_table",
                column_config={
                    c: st.column_config.TextColumn(
                        LABELS.get(c, c), help=" · ".join(h for h in (helps.get(c), why.get(c)) if h) or None
                    )
                    for c in text.columns
                },
            )
    return v
