"""Calibrated p(easy) and a predicted retrain accuracy with an interval, from the twin problem alone.

The easy/hard classifier's raw outputs are not probabilities: it is class-weighted and fitted on the very
D_a samples it would be judged on. Calibration therefore uses cross-fitting: D_a is split into folds by
source image (augmented copies of one image stay together), each fold is scored by a classifier fitted on
the others, and a map from raw score to P(easy) is fitted on those held-out scores (Platt's logistic with
his smoothed targets; isotonic only with enough of both labels). A twin with no hard example cannot be
calibrated: p(easy) is then the twin's easy rate (Laplace), and no file is called hard on evidence.

The predicted A_f of a gold retrain is the mean calibrated p(easy) of D_f. Its interval combines the
Poisson-binomial spread of the per-file outcomes with the calibration's own uncertainty: a bootstrap over
D_a's source images refits the calibration map, and each draw samples the files' outcomes from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVEL = 0.9  # the interval's coverage
FOLDS = 5
BOOTSTRAP = 400
MIN_PER_LABEL_ISOTONIC = 20  # fewer easy or hard twin samples: isotonic falls back to Platt
THIN_SOURCES = 20  # fewer distinct aux images: the interval is flagged as resting on thin evidence
THIN_HARD = 5  # fewer hard twin images: likewise
EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from a raw score (a logit, or any real score where higher = more likely easy) to P(easy).

    kind: 'platt' (p = sigmoid(a*(z - centre)/scale + b), a >= 0), 'isotonic' (a step function through
    `knots`) or 'prior' (one probability for every sample: the twin had only one label, or its scores carried
    no information). Outputs stay within [floor, 1 - floor]: Laplace's bounds for the number of twin images
    it was fitted on (a handful of images cannot support p(easy) 0.0005)."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    centre: float = 0.0
    scale: float = 1.0
    knots_z: tuple = ()
    knots_p: tuple = ()
    floor: float = 0.0
    note: str = ""

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if self.kind == "isotonic":
            p = np.interp(z, np.asarray(self.knots_z), np.asarray(self.knots_p))
        else:
            p = sigmoid(self.a * (z - self.centre) / self.scale + self.b)
        return np.clip(p, self.floor, 1 - self.floor)


RIDGE = 1.0  # Gaussian prior on Platt's slope (standardised scores): a few twin images cannot make it steep


def fit_platt(z: np.ndarray, y: np.ndarray, iters: int = 100, floor: float = 0.0) -> Calibrator:
    """Platt scaling by Newton's method on his smoothed targets ((N+ + 1)/(N+ + 2), 1/(N- + 2)) and a ridge
    on the slope of the standardised score, which keep a small or separable sample from giving 0/1
    probabilities. A negative slope (held-out scores ranked the wrong way) is clamped to 0: the map is then
    the smoothed base rate."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    base = float(logit(t.mean())) if len(t) else 0.0
    if len(z) == 0 or np.ptp(z) == 0:
        return Calibrator("platt", 0.0, base, floor=floor, note="held-out scores carried no information")
    centre, scale = float(z.mean()), float(z.std())
    u = (z - centre) / scale
    a, b = 1.0, base
    for _ in range(iters):
        p = sigmoid(a * u + b)
        g = np.array([np.sum((p - t) * u) + RIDGE * a, np.sum(p - t)])
        w = p * (1 - p) + 1e-9
        h = np.array([[np.sum(w * u * u) + RIDGE, np.sum(w * u)], [np.sum(w * u), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    if not np.isfinite(a) or not np.isfinite(b) or a <= 0:
        return Calibrator("platt", 0.0, base, floor=floor, note="held-out scores carried no information")
    return Calibrator("platt", float(a), float(b), centre, scale, floor=floor)


def fit_isotonic(z: np.ndarray, y: np.ndarray, floor: float = 0.0) -> Calibrator:
    """Pool-adjacent-violators on (z, y), each block's rate by Laplace's rule."""
    order = np.argsort(z, kind="stable")
    zs, ys = np.asarray(z, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
    out: list = []
    for i in range(len(ys)):
        out.append([ys[i], 1.0, zs[i], zs[i]])  # sum, count, z low, z high
        while len(out) > 1 and out[-2][0] / out[-2][1] >= out[-1][0] / out[-1][1]:
            s, c, lo, _ = out.pop(-2)
            out[-1] = [out[-1][0] + s, out[-1][1] + c, lo, out[-1][3]]
    kz, kp = [], []
    for s, c, lo, hi in out:
        p = (s + 1) / (c + 2)
        kz += [lo, hi]
        kp += [p, p]
    return Calibrator("isotonic", knots_z=tuple(kz), knots_p=tuple(kp), floor=floor)


def fit_calibrator(z: np.ndarray, y: np.ndarray, method: str = "platt", n_images: int | None = None) -> Calibrator:
    """The calibration map of held-out scores z to the twin's labels y (1 = easy); `n_images` = distinct twin
    images (default len(y)) sets the Laplace floor. See the module docstring."""
    y = np.asarray(y).astype(int)
    n, n_easy = len(y), int(y.sum())
    floor = 1.0 / ((n_images or n) + 2)
    if n == 0:
        return Calibrator("prior", 0.0, 0.0, floor=0.5, note="no twin sample")
    if n_easy in (0, n):
        rate = (n_easy + 1) / (n + 2)
        only = "easy" if n_easy else "hard"
        return Calibrator("prior", 0.0, float(logit(rate)), floor=floor, note=f"the twin has only {only} samples")
    if method == "isotonic" and min(n_easy, n - n_easy) >= MIN_PER_LABEL_ISOTONIC:
        return fit_isotonic(z, y, floor)
    cal = fit_platt(z, y, floor=floor)
    if method == "isotonic":
        note = f"isotonic needs {MIN_PER_LABEL_ISOTONIC} of each label: Platt used"
        return Calibrator(cal.kind, cal.a, cal.b, cal.centre, cal.scale, floor=floor, note=note)
    return cal


def source_folds(groups: np.ndarray, k: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Fold index per sample, whole source images to one fold (at most one fold per distinct image)."""
    uniq = np.unique(groups)
    k = max(2, min(k, len(uniq)))
    rng = np.random.default_rng([seed, 83])
    fold_of = dict(zip(uniq[rng.permutation(len(uniq))], np.arange(len(uniq)) % k))
    return np.array([fold_of[g] for g in groups])


def cross_fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, fit_score, k: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Out-of-fold scores: each fold scored by `fit_score(x_train, y_train)` (a function of new x) fitted on
    the other folds. Returns (N,) raw scores, or NaN where the twin has too few distinct images (< 2)."""
    out = np.full(len(y), np.nan)
    if len(np.unique(groups)) < 2:
        return out
    folds = source_folds(groups, k, seed)
    for f in np.unique(folds):
        test = folds == f
        out[test] = fit_score(x[~test], y[~test])(x[test])
    return out


@dataclass(frozen=True)
class Forecast:
    """Predicted accuracy (%) of a gold retrain on D_f with its interval, and the reasons it is wide."""

    expected: float
    low: float
    high: float
    n: int  # files forecast
    draws: np.ndarray = field(repr=False)  # bootstrap draws of the achieved A_f (%), to combine classes
    level: float = LEVEL
    reasons: tuple = ()
    calibration: str = ""

    def as_dict(self) -> dict:
        return {
            "predicted_acc_forget": round(self.expected, 2),
            "low": round(self.low, 2),
            "high": round(self.high, 2),
            "level": self.level,
            "files": self.n,
            "calibration": self.calibration,
            "reasons": list(self.reasons),
        }


def predict_accuracy(
    z_forget: np.ndarray,
    z_twin: np.ndarray,
    y_twin: np.ndarray,
    groups: np.ndarray,
    method: str = "platt",
    seed: int = 0,
    n_boot: int = BOOTSTRAP,
    level: float = LEVEL,
) -> Forecast:
    """Predicted A_f (%) of a retrain on the files with raw scores `z_forget`, from held-out twin scores
    `z_twin` with labels `y_twin` (1 = easy) and source images `groups`; a `level` interval.

    Each bootstrap draw resamples the twin's source images, refits the calibration map and samples every
    file's outcome from its recalibrated p(easy): the spread holds both the calibration's uncertainty and
    the Poisson-binomial spread of the outcomes."""
    z_forget, z_twin, y_twin = np.asarray(z_forget, float), np.asarray(z_twin, float), np.asarray(y_twin, int)
    ok = np.isfinite(z_twin)
    z_twin, y_twin, groups = z_twin[ok], y_twin[ok], np.asarray(groups)[ok]
    uniq = np.unique(groups)
    cal = fit_calibrator(z_twin, y_twin, method, len(uniq))
    p = cal(z_forget)
    rng = np.random.default_rng([seed, 89])
    rows = {g: np.flatnonzero(groups == g) for g in uniq}
    draws = np.empty(n_boot)
    for i in range(n_boot):
        pick = np.concatenate([rows[g] for g in rng.choice(uniq, len(uniq))]) if len(uniq) else np.array([], int)
        yb = y_twin[pick]
        if len(pick) and yb.min() == yb.max():  # a resample with one label: a draw of its easy rate (Jeffreys)
            easy = float(yb[0]) * len(uniq)
            pb = np.full(len(p), rng.beta(easy + 0.5, len(uniq) - easy + 0.5))
        else:
            pb = fit_calibrator(z_twin[pick], yb, method, len(uniq))(z_forget) if len(pick) else p
        draws[i] = 100.0 * (rng.random(len(pb)) < pb).mean() if len(pb) else np.nan
    tail = (1 - level) / 2
    low, high = np.nanquantile(draws, [tail, 1 - tail]) if len(p) else (np.nan, np.nan)
    expected = 100.0 * float(p.mean()) if len(p) else float("nan")
    return Forecast(
        expected, float(min(low, expected)), float(max(high, expected)), len(p), draws, level,
        tuple(thin_reasons(y_twin, groups)), describe_calibration(cal, method),
    )  # fmt: skip


def thin_reasons(y_twin: np.ndarray, groups: np.ndarray) -> list[str]:
    """Why an interval is wide, in plain words."""
    out = []
    n_src = len(np.unique(groups))
    hard_src = len(np.unique(np.asarray(groups)[np.asarray(y_twin) == 0]))
    if n_src < THIN_SOURCES:
        out.append(f"only {n_src} distinct aux images (under {THIN_SOURCES}) calibrate p(easy)")
    if hard_src == 0:
        out.append("the twin has no hard example: the forecast rests on its easy rate alone")
    elif hard_src < THIN_HARD:
        out.append(f"only {hard_src} hard aux image(s) (under {THIN_HARD}) show what a hard file looks like")
    return out


def describe_calibration(cal: Calibrator, method: str) -> str:
    base = {
        "platt": "Platt scaling on cross-fitted twin scores",
        "isotonic": "isotonic regression on cross-fitted twin scores",
        "prior": "the twin's easy rate (Laplace), one value for every file",
    }[cal.kind]
    return f"{base} ({cal.note})" if cal.note else base


def combine(forecasts: list[Forecast], level: float = LEVEL, names: list[str] | None = None) -> Forecast:
    """The whole request's forecast from per-class ones (file-weighted; class draws are independent); with
    `names` each class's reasons say which class they are about."""
    n = np.array([f.n for f in forecasts], float)
    draws = sum(f.draws * w for f, w in zip(forecasts, n)) / n.sum()
    expected = float(sum(f.expected * w for f, w in zip(forecasts, n)) / n.sum())
    tail = (1 - level) / 2
    low, high = np.nanquantile(draws, [tail, 1 - tail])
    named = names if names and len(forecasts) > 1 else [""] * len(forecasts)
    reasons = tuple(dict.fromkeys(f"class {c}: {r}" if c else r for f, c in zip(forecasts, named) for r in f.reasons))
    by_cal: dict = {}
    for f, c in zip(forecasts, named):
        by_cal.setdefault(f.calibration, []).append(c)
    cals = [f"class {', '.join(cs)}: {cal}" if all(cs) and len(by_cal) > 1 else cal for cal, cs in by_cal.items()]
    return Forecast(
        expected,
        float(min(low, expected)),
        float(max(high, expected)),
        int(n.sum()),
        draws,
        level,
        reasons,
        "; ".join(cals),
    )


def reliability(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability curve: per equal-width bin of p, the mean p, the mean truth (0/1 or soft) and the count."""
    p, truth = np.asarray(p, float), np.asarray(truth, float)
    ok = np.isfinite(p) & np.isfinite(truth)
    p, truth = p[ok], truth[ok]
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return [
        {"p_mean": float(p[idx == b].mean()), "truth_mean": float(truth[idx == b].mean()), "n": int((idx == b).sum())}
        for b in range(bins)
        if (idx == b).any()
    ]


def ece(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean |mean p - mean truth| over equal-width bins of p."""
    rows = reliability(p, truth, bins)
    n = sum(r["n"] for r in rows)
    return float(sum(r["n"] * abs(r["p_mean"] - r["truth_mean"]) for r in rows) / n) if n else float("nan")


def forecast_words(fc) -> str:
    """One line: the predicted A_f of a retrain with its interval and, when wide, why (a Forecast or its dict /
    stored model)."""
    fc = fc.as_dict() if isinstance(fc, Forecast) else fc
    get = (lambda k: fc[k]) if isinstance(fc, dict) else (lambda k: getattr(fc, k))
    pct = int(round(100 * get("level")))
    line = (
        f"predicted A_f of a retrain {get('predicted_acc_forget'):.1f}% "
        f"({pct}% interval {get('low'):.1f}-{get('high'):.1f}, {get('files')} files; p(easy) by {get('calibration')})"
    )
    reasons = get("reasons")
    return line + (f"; wide because {'; '.join(reasons)}" if reasons else "")
