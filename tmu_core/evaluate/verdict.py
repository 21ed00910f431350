"""The verdict of one run (EVALUATION.md §5): which method lands closest to gold, named only above the noise floor.

Gold is itself noisy: golds of one D_r that differ only in training seed differ in A_f by several images, and one
run of a method differs from its rerun by as much. So a method is "closest to gold" only when its |Δ| beats every
other candidate's by more than that spread; otherwise the candidates within it are tied.
- Candidates: the untouched original (doing nothing, always a row) and every unlearning method. Controls
  (random_k reads TMU's count and chooses at random, oracle_labels reads gold) are shown but never a candidate
  and never the yardstick of a tie; gold is the target.
- Noise floor, in D_f images: with K > 1 gold models, the range of their A_f (at least one image); with one gold,
  DEFAULT_FLOOR_SHARE of |D_f| (at least one image). Measured (benchmarks/results/*-3seeds-r3-ensemble.csv, column
  "gold A_f spread", K = 3, |D_f| = 100, golds from their own seeds): on the CIFAR-10 copy the three golds' A_f range
  averages 5.3 points (2 to 12, 12 class x seed runs); on digits 2.0 (0 to 8, 30 runs). One run's TMU |Δ| also moved
  by up to 8 points between two thread counts. 5% of |D_f| is the CIFAR-10 average spread; on digits it is on the
  safe side.
- Rank on |Δ| in images; beside it per-sample agreement with gold (higher is better, tied within the same floor:
  it is a share of D_f too) and activation distance (lower is better; no floor is known for it, so only its
  lowest value is named). When the leaders differ by measure, the verdict says which leads on which.
Pure functions of a run's typed metrics (store.schema: MetricsFile, or a sweep's SweepResult), shared by the CLI,
the sweep tables and the pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..methods import display, ordered
from ..store.schema import MetricsFile, SweepResult

DEFAULT_FLOOR_SHARE = 0.05  # of |D_f|: the mean A_f range of three golds of one D_r on CIFAR-10 (5.3 points, 2-12)
FLOOR_EVIDENCE = (
    "three golds of one D_r, differing only in training seed, span 5.3 points of A_f on average "
    "(2 to 12) on CIFAR-10, and one run of a method moves by as much when rerun"
)


@dataclass(frozen=True)
class NoiseFloor:
    """How far apart two |Δ| must be (in D_f images) before one run can rank them."""

    images: float  # the floor in D_f images (or in percentage points when |D_f| is unknown)
    source: str  # "golds" (measured on this run's K golds) or "default" (DEFAULT_FLOOR_SHARE of |D_f|)
    k: int = 1  # gold models behind it
    spread_points: float = float("nan")  # the K golds' A_f range in percentage points (source "golds")

    def text(self, n_f: int | None) -> str:
        unit = _images(self.images) if n_f else f"{self.images:.1f} points"
        if self.source == "golds":
            return (
                f"the {self.k} gold models of this run (training seeds differ) span {self.spread_points:.1f} "
                f"points of A_f, so one run cannot rank methods closer than {unit}"
            )
        return (
            f"one run cannot rank methods closer than about {unit} ({100 * DEFAULT_FLOOR_SHARE:.0f}% of |D_f|: "
            f"{FLOOR_EVIDENCE})"
        )


@dataclass(frozen=True)
class Row:
    """One candidate or control: its |Δ| (points and images), per-sample agreement, activation distance."""

    name: str
    short: str
    kind: str  # "reference" (the original), "method" or "control"
    abs_delta: float
    images: float  # |Δ| in D_f images (in points when |D_f| is unknown)
    agreement: float
    activation_distance: float


@dataclass(frozen=True)
class Verdict:
    floor: NoiseFloor
    rows: tuple[Row, ...]  # candidates (original and methods) ranked on |Δ|, then the controls
    leaders: tuple[str, ...]  # candidates within the floor of the smallest |Δ|, ranked; one name = a winner
    agreement_leaders: tuple[str, ...]  # candidates within the floor of the highest agreement
    distance_leader: str | None  # the candidate with the lowest activation distance
    forget_count: int | None

    @property
    def winner(self) -> str | None:
        """The one method closest to gold by more than the noise floor, or None (a tie, or no method)."""
        return self.leaders[0] if len(self.leaders) == 1 and self.leaders[0] != "original" else None

    @property
    def original_ties(self) -> bool:
        """The untouched original is among the leaders: no method shown to unlearn better than doing nothing."""
        return self.has_methods and "original" in self.leaders

    @property
    def has_methods(self) -> bool:
        return any(r.kind == "method" for r in self.rows)

    def short(self, name: str) -> str:
        return next(r.short for r in self.rows if r.name == name)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def headline(self) -> str:
        """A few words for a metric card: 'TMU', 'tie: FT, TMU', 'none: TMU, FT tie the original', 'none: the
        original leads' or 'no method run'."""
        if not self.has_methods:
            return "no method run"
        if self.winner:
            return self.short(self.winner)
        names = [self.short(n) for n in self.leaders if n != "original"]
        if self.original_ties:
            return (
                "none: " + ", ".join(names) + (" ties" if len(names) == 1 else " tie") + " the original"
                if names
                else "none: the original leads"
            )
        return "tie: " + ", ".join(names)

    def sentences(self) -> list[str]:
        """The verdict in full sentences: ranking, noise floor, the original, the other measures."""
        if not self.has_methods:
            return ["This run trained no unlearning method: there is nothing to rank against gold."]
        n_f = self.forget_count

        def fmt(name: str) -> str:
            return f"{self.short(name)} ({_delta_text(self.row(name), n_f)})"

        out = []
        if self.winner:
            second = next((r for r in self.rows if r.kind != "control" and r.name != self.winner), None)
            out.append(
                f"Closest to gold: {fmt(self.winner)}, ahead of every other method and the untouched original "
                f"by more than the noise floor" + (f" (next: {fmt(second.name)})." if second else ".")
            )
        elif self.leaders == ("original",):
            out.append(
                f"The untouched original ({_delta_text(self.row('original'), n_f)}) is closer to gold than every "
                f"method by more than the noise floor."
            )
        else:
            tied = ", ".join(fmt(n) for n in self.leaders)
            out.append(
                f"No method is closest to gold on its own: {tied} lie within the noise floor of the smallest |Δ|."
            )
        out.append(f"Noise floor {_floor_value(self.floor, n_f)}: {self.floor.text(n_f)}.")
        if self.original_ties:
            out.append(
                "The untouched original ties the leaders: no method is shown to have unlearned anything "
                "aligned better than doing nothing."
            )
        out.append(self._measures_sentence())
        return out

    def text(self) -> str:
        return " ".join(self.sentences())

    def _measures_sentence(self) -> str:
        """Who leads on |Δ|, on per-sample agreement and on activation distance; says so when they differ."""
        agree = ", ".join(f"{self.short(n)} {self.row(n).agreement:.1f}%" for n in self.agreement_leaders)
        dist = self.distance_leader
        parts = [
            f"on |Δ| {', '.join(self.short(n) for n in self.leaders)}",
            f"on per-sample agreement with gold {agree or '(not stored)'}"
            + (" (within the floor)" if len(self.agreement_leaders) > 1 else ""),
            f"on activation distance {self.short(dist)} ({self.row(dist).activation_distance:.3f})"
            if dist
            else "on activation distance (not stored)",
        ]
        lead = set(self.leaders)
        differ = (self.agreement_leaders and not lead & set(self.agreement_leaders)) or (dist and dist not in lead)
        return ("The leaders differ by measure: " if differ else "Leaders by measure: ") + "; ".join(parts) + "."


def noise_floor(metrics: MetricsFile | SweepResult) -> NoiseFloor:
    """The run's noise floor: from its K > 1 golds' A_f range when it has a gold ensemble, else the default."""
    n_f = metrics.forget_count
    accs = [a for a in (metrics.gold_ensemble.gold_acc_forget if metrics.gold_ensemble else []) if math.isfinite(a)]
    if len(accs) > 1:
        spread = max(accs) - min(accs)
        images = round(spread * n_f / 100.0) if n_f else spread  # A_f counts whole images
        return NoiseFloor(max(1.0, float(images)), "golds", len(accs), spread)
    images = max(1.0, math.ceil(DEFAULT_FLOOR_SHARE * n_f - 1e-9)) if n_f else 100.0 * DEFAULT_FLOOR_SHARE
    return NoiseFloor(float(images), "default")


def verdict(metrics: MetricsFile | SweepResult, floor: NoiseFloor | None = None) -> Verdict:
    """The verdict of one run from its typed metrics (the store's MetricsFile, or a sweep's SweepResult): see the
    module docstring."""
    n_f = metrics.forget_count
    floor = floor or noise_floor(metrics)
    rows = []
    for name in ordered(metrics.models):
        if name == "gold":
            continue
        m, d = metrics.models[name], display(name)
        short = "original" if name == "original" else d.short  # "Orig" reads as a method in a sentence
        delta = _num(m.abs_delta)
        images = float(round(delta * n_f / 100.0)) if n_f and math.isfinite(delta) else delta  # whole images
        rows.append(
            Row(
                name,
                short,
                "reference" if name == "original" else ("control" if d.kind == "control" else "method"),
                delta,
                images,
                _num(m.sample_agreement),
                _num(m.activation_distance),
            )
        )
    candidates = sorted(
        (r for r in rows if r.kind != "control" and math.isfinite(r.abs_delta)),
        key=lambda r: (r.images, r.kind != "reference"),
    )
    controls = [r for r in rows if r.kind == "control"]
    leaders = _within(candidates, lambda r: r.images, floor.images, lowest=True)
    scale = n_f / 100.0 if n_f else 1.0
    agree = _within(
        [r for r in candidates if math.isfinite(r.agreement)], lambda r: r.agreement * scale, floor.images, lowest=False
    )
    dists = [r for r in candidates if math.isfinite(r.activation_distance)]
    dist = min(dists, key=lambda r: r.activation_distance).name if dists else None
    return Verdict(
        floor, tuple(candidates + controls), tuple(r.name for r in leaders), tuple(r.name for r in agree), dist, n_f
    )


def _num(value) -> float:
    """A stored number as a float; nan for a missing or non-numeric one (a results file may hold null)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _within(rows: list[Row], value, floor: float, lowest: bool) -> list[Row]:
    """The rows whose value lies within `floor` of the best (lowest or highest), best first."""
    if not rows:
        return []
    sign = 1 if lowest else -1
    ranked = sorted(rows, key=lambda r: sign * value(r))
    best = sign * value(ranked[0])
    return [r for r in ranked if sign * value(r) - best <= floor + 1e-9]


def _images(n: float) -> str:
    n = round(n, 1)
    whole = n == int(n)
    return f"{int(n) if whole else n} image{'' if n == 1 else 's'}"


def _delta_text(row: Row, n_f: int | None) -> str:
    return f"|Δ| {row.abs_delta:.1f}" + (f", {_images(row.images)}" if n_f else "")


def _floor_value(floor: NoiseFloor, n_f: int | None) -> str:
    return _images(floor.images) if n_f else f"{floor.images:.1f} points"
