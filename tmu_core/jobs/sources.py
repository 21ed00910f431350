"""Where a run's data and reference models come from: the only part of a run that differs between a benchmark run
on a registered dataset and a run on the user's own model. The pipeline asks a `Source` (`source_for(cfg)`) for

- the stages it adds before the methods (its references), and their expected cost;
- `load`: the data and the deletion request (one class's forget set, or a request over several classes);
- `references`: the original model and the gold model(s), trained here and cached, or loaded from the user's
  files, or (gold) absent;
- `export`: the unlearned model as a file the user can take away;
- `describe`: what metrics.json says about where the data and models came from.

Everything else (the methods, the evaluation, the stored tables and activations, status and cancelling) is the
pipeline's, the same for every source; this module's `Native` is the benchmark run's source, and
`tmu_core.ownmodel.source.Own` the user's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import store
from ..config import RunConfig
from ..data import DATASETS, Dataset, ForgetSet, load_dataset, resolve_forget
from ..errors import Cancelled, TMUError
from ..methods import METHODS
from ..references import Trained, extra_golds, gold_seed, reference_key, train_cached
from ..train import Progress


@dataclass(frozen=True)
class Request:
    """The whole D_f (`whole`: the baselines and the evaluation use it) and its per-class parts (TMU builds one
    twin problem per class); a benchmark run's request is one class: `parts` is `(whole,)`."""

    whole: ForgetSet
    parts: tuple


@dataclass
class Inputs:
    data: Dataset
    request: Request
    seconds: float
    extra: object = None  # what the source keeps for its references (the user's loaded models)


@dataclass
class References:
    original: Trained
    gold: Trained | None  # None: the run has no gold model (the user's model, --gold none)
    golds: list = field(default_factory=list)  # golds 2..K of a gold ensemble
    origin: dict = field(default_factory=dict)  # model -> "trained", "cache" or "file" (the user's)
    notes: list = field(default_factory=list)  # what a user should know about them, in plain words


def stop_check(run: store.Run):
    def should_stop():
        if run.cancel_requested():
            raise Cancelled()

    return should_stop


class Native:
    """A registered dataset's split; original and gold trained here with the project's recipe (cached)."""

    def stages(self, cfg: RunConfig) -> list[str]:
        return ["original", "gold", *(["golds"] if cfg.gold_seeds > 1 else [])]

    def weights(self, cfg: RunConfig, inputs: Inputs) -> dict[str, float]:
        epochs = float(cfg.train.epochs)
        return {"original": epochs, "gold": epochs, "golds": epochs * (cfg.gold_seeds - 1)}

    def check(self, cfg: RunConfig) -> None:
        DATASETS.entry(cfg.data.dataset)
        if cfg.data.data_root and cfg.data.dataset == "digits":
            raise TMUError(
                f"digits is bundled and reads no folder, yet --data-root {cfg.data.data_root} was given: for your "
                "own images give --dataset imagefolder (or --original-weights for your own model), else leave "
                "out --data-root"
            )

    def dataset(self, cfg: RunConfig) -> Dataset:
        return load_dataset(cfg.data, cfg.seed)

    def load(self, cfg: RunConfig) -> Inputs:
        t0 = time.perf_counter()
        data = self.dataset(cfg)
        forget = resolve_forget(data, cfg.forget, cfg.seed)
        return Inputs(data, Request(forget, (forget,)), time.perf_counter() - t0)

    def name_hint(self, cfg: RunConfig, inputs: Inputs) -> str:
        whole = inputs.request.whole
        return f"{cfg.data.dataset}-c{whole.class_index}-n{len(whole.ids)}-s{cfg.seed}"

    def described_config(self, cfg: RunConfig, inputs: Inputs) -> dict:
        return {}

    def references(self, run, cfg: RunConfig, inputs: Inputs, device, writer, report) -> References:
        data, forget, should_stop = inputs.data, inputs.request.whole, stop_check(run)
        for kind, ids in (("original", data.train_ids), ("gold", forget.remain_ids(data))):
            if store.model_cache_file(reference_key(kind, cfg.data, cfg.train, cfg.seed, ids)).exists():
                writer.cached(kind)  # loading it takes a moment: the bar's weight goes to the stages that train
        trained = {}
        for kind, ids, seed in (
            ("original", data.train_ids, cfg.seed),
            ("gold", forget.remain_ids(data), gold_seed(cfg.seed, 0)),
        ):
            writer.begin(kind)
            trained[kind] = train_cached(kind, data, cfg.data, cfg.train, ids, seed, device, report, should_stop)
            writer.done(kind, trained[kind].seconds, trained[kind].cached)
        golds = self._extra_golds(cfg, data, forget, device, writer, report, should_stop)
        origin = {k: "cache" if t.cached else "trained" for k, t in trained.items()}
        return References(trained["original"], trained["gold"], golds, origin)

    def _extra_golds(self, cfg, data, forget, device, writer, report, should_stop) -> list[Trained]:
        """Golds 2..K of the gold ensemble (none when K = 1), reported as the 'golds' stage."""
        if cfg.gold_seeds < 2:
            return []
        t = time.perf_counter()
        writer.begin("golds")
        seen = {"gold": 0, "last": 0.0}  # each gold reports 0..1: count them, so the stage's fraction only grows

        def each(p: Progress) -> None:
            if p.fraction < seen["last"]:
                seen["gold"] += 1
            seen["last"] = p.fraction
            report(Progress("golds", min(1.0, (seen["gold"] + p.fraction) / (cfg.gold_seeds - 1)), p.message))

        golds = extra_golds(data, cfg.data, forget, cfg.train, cfg.seed, cfg.gold_seeds, device, each, should_stop)
        writer.done("golds", time.perf_counter() - t, all(g.cached for g in golds))
        return golds

    def pin(self, run: store.Run, cfg: RunConfig) -> None:
        """What a resume must find unchanged: nothing here (a registered dataset and the cached references are
        keyed by what made them)."""

    def check_resume(self, run: store.Run, cfg: RunConfig) -> None:
        pass

    def keep(self, run: store.Run, cfg: RunConfig, inputs: Inputs, models: dict) -> None:
        """The other methods' unlearned models a run keeps: those the embedding maps read (state dicts)."""
        for name, model in models.items():
            if METHODS.get(name).embed:
                run.save_weights(name, model.state_dict())

    def export(self, run: store.Run, inputs: Inputs, name: str, model) -> Path:
        """The unlearned model's state dict (the registry's architecture, `--model`)."""
        run.save_weights(name, model.state_dict())
        return run.weights_path(name)

    def describe(self, cfg: RunConfig, inputs: Inputs, refs: References, models: dict) -> dict:
        o, g = refs.original, refs.gold
        return {"cache": {"original": o.key, "gold": g.key, "original_cached": o.cached, "gold_cached": g.cached}}
