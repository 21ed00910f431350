"""The verdict of one run (EVALUATION.md §5): which method lands closest to gold, named only above the noise floor.

Gold is itself noisy: golds of one D_r that differ only in training seed differ in A_f by several images, and one
run of a method differs from its rerun by as much. So a method is "closest to gold" only when its |Δ| beats every
other candidate's by more than that spread; otherwise the candidates within it are tied.
- Candidates: the untouched original (doing nothing, always a row) and every unlearning method. Controls
  (random_k reads TMU's count and chooses at random, oracle_labels reads gold) are shown but never a candidate
  and never the yardstick of a tie; gold is the target.
- Noise floor of a method's |Δ|, in D_f images: the larger of gold's seed spread and the method's own rerun spread.
  - Gold's spread: with K > 1 gold models, the range of their A_f (at least one image). With one gold, the default
    DEFAULT_FLOOR_SCALE · sqrt(|D_f| p (1 − p)), p = gold's A_f: a binomial spread, so it grows like sqrt(|D_f|),
    not in proportion to it. The constant is measured: in the round-3 files (benchmarks/results/*-3seeds-r3-
    ensemble.csv and -table1.csv, K = 3, |D_f| = 100, golds from their own seeds) the three golds' A_f range
    divided by sqrt(|D_f| p (1 − p)) averages 1.155 over the 12 CIFAR-10 runs and 1.159 over the 24 digits runs
    with 0 < p < 1. (Three independent binomial counts would give 1.69, the expected range of three normal draws:
    golds of one D_r agree on most samples, so their counts vary less.)
  - The method's rerun spread: the mean range of its A_f over reruns with M_o, D_f and gold fixed (only its own
    seed changes), measured by benchmarks/rerun_noise.py and kept in rerun_noise.json beside this module, per
    data set (a data set not measured takes the largest spread measured on any); scaled to the run's |D_f| as a
    binomial spread (× sqrt(|D_f| / the measured |D_f|)). The original does nothing and has no rerun spread.
  Two candidates are tied when their |Δ| differ by no more than the larger of their two floors.
- Per-sample agreement (higher is better) has its own floor: how far a method's agreement moves when gold is
  swapped for another gold of the same D_r. Two golds disagree on D samples; a method matches one or the other
  there, so its agreement against the two differs by about sqrt(D) images (SD), and three golds would span
  RANGE_OF_3 · sqrt(D / 2) (the same statistic as gold's A_f range). D is measured with K > 1 golds (from their
  pairwise agreement); with one gold it is the expected DEFAULT_DISAGREEMENT · 2 |D_f| p (1 − p) (measured D over
  2 |D_f| p (1 − p): 0.37 on CIFAR-10, 0.44 on digits, same files). The method's rerun range of agreement counts too.
- Activation distance (lower is better): no floor is known for it, so only its lowest value is named. When the
  leaders differ by measure, the verdict says which leads on which.
Pure functions of a run's typed metrics (store.schema: MetricsFile, or a sweep's SweepResult), shared by the CLI,
the sweep tables and the pages.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from ..methods import display, ordered, primary_method
from ..store.schema import MetricsFile, SweepResult

DEFAULT_FLOOR_SCALE = 1.15  # golds' A_f range / sqrt(|D_f| p (1 − p)): 1.155 CIFAR-10 (12 runs), 1.159 digits (24)
RANGE_OF_3 = 1.693  # expected range of three draws of a standard normal
DEFAULT_DISAGREEMENT = 0.4  # gold-vs-gold disagreement / (2 |D_f| p (1 − p)): 0.37 CIFAR-10, 0.44 digits
RERUN_FILE = "rerun_noise.json"
FLOOR_EVIDENCE = (
    "three golds of one D_r, differing only in training seed, span 1.15 · sqrt(|D_f| p (1 − p)) images of A_f on "
    "average (p = gold's A_f; 5.3 points on CIFAR-10 at |D_f| = 100)"
)
SOURCES = {"golds": "gold", "default": "default", "rerun": "rerun"}  # the words a table shows for a floor's source


@lru_cache(maxsize=1)
def measured_rerun() -> dict:
    """The per-data-set rerun spreads benchmarks/rerun_noise.py measured (empty when none are committed)."""
    try:
        return json.loads(resources.files(__package__).joinpath(RERUN_FILE).read_text())
    except (FileNotFoundError, OSError, ValueError):
        return {}


def rerun_spread(dataset: str | None, forget_count: int | None, table: dict | None = None) -> tuple[dict, dict, str]:
    """Each method's rerun range of A_f and of agreement, in images at `forget_count` (points when unknown), and
    where they were measured. A data set not measured takes the largest range measured on any data set; a result
    that names no data set (an old sweep's) gets none."""
    table = measured_rerun() if table is None else table
    entries = [table[dataset]] if dataset in table else list(table.values())
    if not entries or not dataset:  # a result that does not say its data set: nothing known to add
        return {}, {}, ""

    def scaled(key: str) -> dict:
        out = {}
        for e in entries:
            n0 = e.get("forget_count") or 100
            factor = math.sqrt(forget_count * n0) / 100.0 if forget_count else 1.0  # points at n0 -> images at n
            for name, points in e.get(key, {}).items():
                out[name] = max(out.get(name, 0.0), float(points) * factor)
        return out

    where = ", ".join(e.get("source", "") for e in entries)
    return scaled("range_points"), scaled("agreement_range_points"), where + ("" if dataset in table else " (largest)")


@dataclass(frozen=True)
class NoiseFloor:
    """How far apart two |Δ| (or two agreements) must be, in D_f images, before one run can rank them."""

    images: float  # gold's part of the |Δ| floor, in D_f images (in percentage points when |D_f| is unknown)
    source: str  # "golds" (measured on this run's K golds) or "default" (the binomial spread)
    k: int = 1  # gold models behind it
    spread_points: float = float("nan")  # the K golds' A_f range in percentage points (source "golds")
    agreement_images: float = float("nan")  # gold's part of the agreement floor (gold-vs-gold disagreement)
    agreement_source: str = "default"  # "golds" (their measured pairwise agreement) or "default"
    disagreement_images: float = float("nan")  # D: samples two golds disagree on (measured or expected)
    rerun: dict = field(default_factory=dict)  # method -> its rerun range of A_f, in images
    rerun_agreement: dict = field(default_factory=dict)  # method -> its rerun range of agreement, in images
    rerun_file: str = ""  # where the rerun spreads were measured

    def of(self, name: str) -> tuple[float, str]:
        """A candidate's |Δ| floor and its source: 'gold' / 'default' (gold's spread) or 'rerun' (its own)."""
        own = self.rerun.get(name, 0.0) if name != "original" else 0.0
        if own > self.images:
            return float(max(1.0, round(own))), "rerun"
        return self.images, SOURCES[self.source]

    def agreement_of(self, name: str) -> tuple[float, str]:
        """A candidate's agreement floor and its source: 'gold' / 'default' (gold-vs-gold) or 'rerun'."""
        own = self.rerun_agreement.get(name, 0.0) if name != "original" else 0.0
        if own > self.agreement_images:
            return float(max(1.0, round(own))), "rerun"
        return self.agreement_images, SOURCES[self.agreement_source]

    def above(self, names=None) -> dict:
        """The methods (of `names`, default every measured one) whose own rerun spread is larger than gold's part of
        the floor: name -> images."""
        return {
            n: self.of(n)[0]
            for n in self.rerun
            if n != "original" and self.of(n)[1] == "rerun" and (names is None or n in names)
        }

    def text(self, n_f: int | None, names=None) -> str:
        unit = _images(self.images) if n_f else f"{self.images:.1f} points"
        if self.source == "golds":
            out = (
                f"the {self.k} gold models of this run (training seeds differ) span {self.spread_points:.1f} "
                f"points of A_f, so one run cannot rank methods closer than {unit}"
            )
        else:
            out = f"one run cannot rank methods closer than about {unit} (the default: {FLOOR_EVIDENCE})"
        above = self.above(names)
        if above:
            names = ", ".join(f"{display(n).short} {_images(v)}" for n, v in above.items())
            out += f"; a method's own rerun moves its A_f by more, and its floor is that: {names}"
        return out


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
    floor: float = 1.0  # its |Δ| floor in images: the larger of gold's spread and its own rerun spread
    floor_source: str = "default"  # "gold", "rerun" or "default"
    agreement_floor: float = 1.0  # its agreement floor in images
    agreement_floor_source: str = "default"


@dataclass(frozen=True)
class StepCheck:
    """Did an unlearning step do what its split asked? Gold-free for TMU: its achieved A_f against the share of
    D_f its split called easy (the share the step was asked to keep right). The oracle control likewise against
    gold's easy share (gold's A_f). Within the method's noise floor, the step did what the split said."""

    name: str
    asked: float  # the A_f (%) the split asks for: the predicted-easy share (TMU) or gold's easy share (oracle)
    achieved: float  # the method's A_f (%)
    n_f: int | None
    floor: float  # the method's |Δ| floor in images (points when |D_f| is unknown)
    basis: str  # what `asked` is, in words

    @property
    def gap(self) -> float:
        """Achieved minus asked, in images (points when |D_f| is unknown); negative: it forgot more."""
        diff = self.achieved - self.asked
        return float(round(diff * self.n_f / 100.0)) if self.n_f else diff

    @property
    def within(self) -> bool:
        return abs(self.gap) <= self.floor + 1e-9

    def sentence(self) -> str:
        unit = _images(abs(self.gap)) if self.n_f else f"{abs(self.gap):.1f} points"
        side = "below" if self.gap < 0 else "above"
        where = "within" if self.within else "beyond"
        floor = _images(self.floor) if self.n_f else f"{self.floor:.1f} points"
        return (
            f"{display(self.name).short}'s step kept A_f at {self.achieved:.1f}% where {self.basis} asked for "
            f"{self.asked:.1f}%: {unit} {side}, {where} its noise floor of {floor}."
        )


@dataclass(frozen=True)
class Verdict:
    floor: NoiseFloor
    rows: tuple[Row, ...]  # candidates (original and methods) ranked on |Δ|, then the controls
    leaders: tuple[str, ...]  # candidates within the floor of the smallest |Δ|, ranked; one name = a winner
    agreement_leaders: tuple[str, ...]  # candidates within the floor of the highest agreement
    distance_leader: str | None  # the candidate with the lowest activation distance
    forget_count: int | None
    step_checks: tuple[StepCheck, ...] = ()  # the gold-free check of TMU's step, and the oracle's

    @property
    def winner(self) -> str | None:
        """The one method closest to gold by more than the noise floor, or None (a tie, or no method)."""
        return self.leaders[0] if len(self.leaders) == 1 and self.leaders[0] != "original" else None

    @property
    def original_ties(self) -> bool:
        """The untouched original is among the leaders: no method shown to unlearn better than doing nothing."""
        return self.has_methods and "original" in self.leaders

    @property
    def lead_floor(self) -> float:
        """The |Δ| floor of the leader (images): how far above its |Δ| another candidate still ties it."""
        return self.row(self.leaders[0]).floor if self.leaders else self.floor.images

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
        shown = {r.name for r in self.rows}
        out.append(f"Noise floor {_floor_value(self.floor, n_f)}: {self.floor.text(n_f, shown)}.")
        out.append(self._agreement_floor_sentence())
        if self.original_ties:
            out.append(
                "The untouched original ties the leaders: no method is shown to have unlearned anything "
                "aligned better than doing nothing."
            )
        out.append(self._measures_sentence())
        checks = [c.sentence() for c in self.step_checks]
        if checks:
            out.append("Does the step do what the split says? " + " ".join(checks))
        return out

    def text(self) -> str:
        return " ".join(self.sentences())

    def _agreement_floor_sentence(self) -> str:
        f, n_f = self.floor, self.forget_count
        unit = _images(f.agreement_images) if n_f else f"{f.agreement_images:.1f} points"
        how = (
            f"the {f.k} golds disagree with one another on {f.disagreement_images:.1f} samples on average"
            if f.agreement_source == "golds"
            else f"two golds would disagree on about {f.disagreement_images:.1f} samples (expected at gold's A_f)"
        )
        return (
            f"Per-sample agreement has its own floor, {unit}: {how}, so a method's agreement moves by that much "
            f"when gold is swapped for another."
        )

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


def noise_floor(metrics: MetricsFile | SweepResult, rerun: dict | None = None) -> NoiseFloor:
    """The run's noise floor: gold's part from its K > 1 golds' A_f range (else the binomial default), the
    agreement floor from gold-vs-gold disagreement, and each method's measured rerun spread (`rerun`: a
    rerun_noise.json-shaped table; default the committed one)."""
    n_f = metrics.forget_count
    ens = metrics.gold_ensemble
    accs = [a for a in (ens.gold_acc_forget if ens else []) if math.isfinite(a)]
    p = _gold_p(metrics)
    scale = n_f if n_f else 100.0  # images, or points when |D_f| is unknown
    default_images = max(1.0, math.floor(DEFAULT_FLOOR_SCALE * math.sqrt(scale * p * (1 - p)) + 0.5))
    if len(accs) > 1:
        spread = max(accs) - min(accs)
        images = round(spread * n_f / 100.0) if n_f else spread  # A_f counts whole images
        base = dict(images=max(1.0, float(images)), source="golds", k=len(accs), spread_points=spread)
    else:
        base = dict(images=float(default_images), source="default")
    agreement = _num(ens.gold_agreement) if ens else float("nan")
    if math.isfinite(agreement):
        disagree, agree_source = (100.0 - agreement) * scale / 100.0, "golds"
    else:
        disagree, agree_source = DEFAULT_DISAGREEMENT * 2 * scale * p * (1 - p), "default"
    agree_images = max(1.0, math.floor(RANGE_OF_3 * math.sqrt(disagree / 2) + 0.5))
    runs, runs_agree, where = rerun_spread(getattr(metrics, "dataset", None), n_f, rerun)
    return NoiseFloor(
        **base,
        agreement_images=float(agree_images),
        agreement_source=agree_source,
        disagreement_images=disagree,
        rerun=runs,
        rerun_agreement=runs_agree,
        rerun_file=where,
    )


def _gold_p(metrics) -> float:
    """Gold's A_f as a share (0.5, the widest binomial spread, when the run has no finite gold A_f)."""
    gold = metrics.models.get("gold")
    p = _num(getattr(gold, "acc_forget", None)) / 100.0 if gold is not None else float("nan")
    return min(1.0, max(0.0, p)) if math.isfinite(p) else 0.5


def verdict(metrics: MetricsFile | SweepResult, floor: NoiseFloor | None = None, rerun: dict | None = None) -> Verdict:
    """The verdict of one run from its typed metrics (the store's MetricsFile, or a sweep's SweepResult): see the
    module docstring. `rerun`: the methods' rerun spreads (rerun_noise.json's shape); default the committed ones."""
    n_f = metrics.forget_count
    floor = floor or noise_floor(metrics, rerun)
    rows = []
    for name in ordered(metrics.models):
        if name == "gold":
            continue
        m, d = metrics.models[name], display(name)
        short = "original" if name == "original" else d.short  # "Orig" reads as a method in a sentence
        delta = _num(m.abs_delta)
        images = float(round(delta * n_f / 100.0)) if n_f and math.isfinite(delta) else delta  # whole images
        (fl, fl_src), (af, af_src) = floor.of(name), floor.agreement_of(name)
        rows.append(
            Row(
                name,
                short,
                "reference" if name == "original" else ("control" if d.kind == "control" else "method"),
                delta,
                images,
                _num(m.sample_agreement),
                _num(m.activation_distance),
                fl,
                fl_src,
                af,
                af_src,
            )
        )
    candidates = sorted(
        (r for r in rows if r.kind != "control" and math.isfinite(r.abs_delta)),
        key=lambda r: (r.images, r.kind != "reference"),
    )
    controls = [r for r in rows if r.kind == "control"]
    leaders = _within(candidates, lambda r: r.images, lambda r: r.floor, lowest=True)
    scale = n_f / 100.0 if n_f else 1.0
    agree = _within(
        [r for r in candidates if math.isfinite(r.agreement)],
        lambda r: r.agreement * scale,
        lambda r: r.agreement_floor,
        lowest=False,
    )
    dists = [r for r in candidates if math.isfinite(r.activation_distance)]
    dist = min(dists, key=lambda r: r.activation_distance).name if dists else None
    by_name = {r.name: r for r in rows}
    return Verdict(
        floor,
        tuple(candidates + controls),
        tuple(r.name for r in leaders),
        tuple(r.name for r in agree),
        dist,
        n_f,
        _step_checks(metrics, by_name),
    )


def _step_checks(metrics, rows: dict) -> tuple[StepCheck, ...]:
    """TMU's step against its predicted-easy share, and the oracle's against gold's easy share (when run)."""

    out, n_f = [], metrics.forget_count
    primary = primary_method()
    split = getattr(metrics, primary, None)  # the typed summary (MetricsFile and SweepResult alike)
    easy, hard = getattr(split, "pred_easy", None), getattr(split, "pred_hard", None)
    model = metrics.models.get(primary)
    if model is not None and easy is not None and hard is not None and easy + hard > 0 and primary in rows:
        asked = 100.0 * easy / (easy + hard)
        out.append(StepCheck(primary, asked, _num(model.acc_forget), n_f, rows[primary].floor, "its split"))
    gold, oracle = metrics.models.get("gold"), metrics.models.get("oracle_labels")
    if gold is not None and oracle is not None and "oracle_labels" in rows:
        floor = rows["oracle_labels"].floor
        out.append(
            StepCheck("oracle_labels", _num(gold.acc_forget), _num(oracle.acc_forget), n_f, floor, "gold's easy share")
        )
    return tuple(c for c in out if math.isfinite(c.asked) and math.isfinite(c.achieved))


def step_check_block(metrics: MetricsFile | SweepResult) -> dict:
    """The step checks as metrics.json keeps them: per method, the A_f asked and achieved (%), the gap and the
    floor in images, and whether the gap is within the floor."""
    return {
        c.name: {
            "asked_acc_forget": c.asked,
            "achieved_acc_forget": c.achieved,
            "gap_images": c.gap,
            "floor_images": c.floor,
            "within_floor": c.within,
        }
        for c in verdict(metrics).step_checks
    }


def _num(value) -> float:
    """A stored number as a float; nan for a missing or non-numeric one (a results file may hold null)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _within(rows: list[Row], value, floor, lowest: bool) -> list[Row]:
    """The rows whose value lies within the floor of the best (lowest or highest), best first; the floor of a
    pair is the larger of the two rows' floors (`floor(row)`), so a method whose rerun moves far ties widely."""
    if not rows:
        return []
    sign = 1 if lowest else -1
    ranked = sorted(rows, key=lambda r: sign * value(r))
    top = ranked[0]
    best = sign * value(top)
    return [r for r in ranked if sign * value(r) - best <= max(floor(top), floor(r)) + 1e-9]


def _images(n: float) -> str:
    n = round(n, 1)
    whole = n == int(n)
    return f"{int(n) if whole else n} image{'' if n == 1 else 's'}"


def _delta_text(row: Row, n_f: int | None) -> str:
    return f"|Δ| {row.abs_delta:.1f}" + (f", {_images(row.images)}" if n_f else "")


def _floor_value(floor: NoiseFloor, n_f: int | None) -> str:
    return _images(floor.images) if n_f else f"{floor.images:.1f} points"
