"""The gold-free forecast on the Easy/hard audit page: a retrain's predicted A_f with its interval, the decision
rule in words, and the reliability of p(easy) (held-out twin samples; D_f against gold where gold is known)."""

from __future__ import annotations

import streamlit as st

from . import charts


def show_forecast(tmu, metrics) -> None:
    """One section: nothing when the run predates the forecast (no `forecast` in its TMU summary)."""
    fc = getattr(tmu, "forecast", None)
    if fc is None:
        return
    st.markdown("**Forecast without gold**: what TMU tells a user who has no retrain")
    gold = metrics.models.get("gold")
    c = st.columns(3)
    pct = int(round(100 * fc.level))
    c[0].metric(
        "Predicted A_f of a retrain",
        f"{fc.predicted_acc_forget:.1f}%",
        help="the mean calibrated p(easy) of D_f: how many forgotten samples a model retrained without them "
        "would still classify right",
    )
    c[1].metric(
        f"{pct}% interval",
        f"{fc.low:.0f} – {fc.high:.0f}%",
        help="a bootstrap over the twin's aux images refits the calibration, and each draw samples every file's "
        "outcome from its p(easy): both the calibration's uncertainty and the files' own chance are in it",
    )
    if gold is not None:
        inside = fc.low <= gold.acc_forget <= fc.high
        c[2].metric(
            "Gold's A_f (the check)",
            f"{gold.acc_forget:.1f}%",
            delta=f"{gold.acc_forget - fc.predicted_acc_forget:+.1f} points, {'inside' if inside else 'outside'}",
            delta_color="off",
        )
    if fc.reasons:
        st.info("The interval is wide because " + "; ".join(fc.reasons) + ".", icon=":material/info:")
    if tmu.undecided:
        st.warning(
            "The twin had no hard example, so TMU cannot tell which files a retrain would get wrong: it calls "
            "none hard on evidence. The ranking by p(easy) below still orders them from most to least likely right.",
            icon=":material/help:",
        )
    if tmu.decision_rule:
        st.caption(f"p(easy): {fc.calibration}. Decision rule: {tmu.decision_rule}.")
    curves = {"held-out twin samples (D_a)": tmu.reliability_twin}
    if tmu.reliability_gold:
        curves["D_f against gold"] = tmu.reliability_gold
    ece = [f"twin {tmu.ece_twin:.3f}" if tmu.ece_twin is not None else ""]
    if tmu.ece_gold is not None:
        ece.append(f"D_f against gold {tmu.ece_gold:.3f}")
    st.plotly_chart(charts.reliability_figure(curves), key="audit_reliability")
    st.caption("Calibration error (ECE): " + ", ".join(e for e in ece if e) + " (0 = calibrated).")
