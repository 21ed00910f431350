"""Command line: `tmu {datasets,models,methods,train,run,execute,sweep,runs,demo,cancel}` (or `python -m tmu_core ...`).

Flags come from the config models' fields (tmu_core.options); abbreviated flags are refused (`--gold` is not
`--gold-seeds`). A user error prints one line on stderr and exits 2; no traceback reaches the terminal
(tmu_core.entry). Scripts build a RunConfig from the same flags with `add_run_args`, `add_method_args`
and `run_config_from_args`. The background workers are hidden commands (`_worker-embedding`,
`_worker-ray`), not listed by --help.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import store
from .config import DataConfig, ForgetSpec, OwnModelConfig, RunConfig, TrainConfig
from .entry import run_entry
from .errors import TMUError
from .options import add_config_args, config_from_args, given
from .store.schema import MetricsFile, TMUSummary


def _listing(rows) -> int:
    width = max(len(n) for n, _ in rows)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0


def cmd_datasets(args) -> int:
    from .data import DATASETS

    return _listing(DATASETS.describe())


def cmd_models(args) -> int:
    from .models import MODELS

    return _listing(MODELS.describe())


def cmd_methods(args) -> int:
    from .methods import METHODS, display, ordered

    rows = dict(METHODS.describe())
    return _listing(
        [
            (name + (" (control)" if display(name).kind == "control" else ""), rows[name])
            for name in ordered(METHODS.names())
        ]
    )


def add_run_args(p: argparse.ArgumentParser) -> None:
    """The flags of one run's data, forget set, training recipe, seed and device (those of `tmu train`)."""
    add_config_args(p, DataConfig, title="data")
    add_config_args(p, ForgetSpec, title="forget set")
    add_config_args(p, TrainConfig, title="training recipe (defaults depend on the dataset)")
    p.add_argument(
        "--recipe",
        choices=["fast", "paper"],
        default="fast",
        help="per-dataset fast CPU recipe, or the paper's (ResNet-18, lr 0.01 step schedule; for a GPU)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split, forget set and training (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")


def run_config_from_args(args, methods=()) -> RunConfig:
    """The RunConfig that `args` (parsed with `add_run_args`, and `add_method_args` for method settings) describe,
    running `methods`; a conflict or a bad method setting is a TMUError."""
    from .data.recipes import default_train_config
    from .methods import METHODS, method_config

    _no_conflicts(args)
    data = config_from_args(args, DataConfig)
    forget = config_from_args(args, ForgetSpec)
    train = config_from_args(args, TrainConfig, default_train_config(data.dataset, args.recipe))
    params = []
    followed = [f[0] for f in (METHODS.get(m).settings_of for m in methods) if f]  # a control takes TMU's flags
    for m in dict.fromkeys([*methods, *followed]):
        values = given(args, METHODS.get(m).config_cls, prefix=m)
        if values:
            try:
                method_config(m, data.dataset, values)  # validate now, not later in a worker
            except TMUError as exc:  # the flags are --<method>-<setting>: say which method the setting is of
                raise TMUError(f"method {m}: {exc}") from exc
            params.append((m, tuple(sorted(values.items()))))
    cfg = RunConfig(
        data=data,
        forget=forget,
        train=train,
        methods=tuple(methods),
        method_params=tuple(params),
        seed=args.seed,
        device=args.device,
        name=getattr(args, "name", "") or "",
        gold_seeds=getattr(args, "gold_seeds", 1),
        own=_own_config(args),
    )
    if cfg.own.active and "image_size" not in given(args, DataConfig):  # your own model: the images' own size
        from .ownmodel.fit import with_native_size

        cfg = with_native_size(cfg)
    return cfg


def _own_config(args) -> OwnModelConfig:
    """`run` on the user's own model (--original-weights ...); a forget list and today's forget flags conflict."""
    if not hasattr(args, "original_weights"):
        return OwnModelConfig()
    own = config_from_args(args, OwnModelConfig)
    chosen = [f"--{k.replace('_', '-')}" for k in given(args, ForgetSpec)]
    if own.forget_list and chosen:
        raise TMUError(f"--forget-list and {', '.join(chosen)} both choose the forget set; give only one")
    return own


def _no_conflicts(args) -> None:
    """Flags that would silently override each other are refused; --mechanism is --tmu-mechanism's short form."""
    sizes = [
        f"--{k.replace('_', '-')}"
        for k in ("forget_count", "forget_fraction", "forget_ids")
        if getattr(args, k, None) is not None
    ]
    if len(sizes) > 1:
        raise TMUError(
            f"{' and '.join(sizes)} both choose the forget set; give only one of --forget-count, "
            f"--forget-fraction, --forget-ids"
        )
    mechanism, tmu_mechanism = getattr(args, "mechanism", None), getattr(args, "tmu_mechanism", None)
    if mechanism and tmu_mechanism and mechanism != tmu_mechanism:
        raise TMUError(f"--mechanism {mechanism} and --tmu-mechanism {tmu_mechanism} disagree; give one of them")
    if mechanism:
        args.tmu_mechanism = mechanism


def cmd_train(args) -> int:
    from .jobs.pipeline import train_references

    cfg = run_config_from_args(args)
    out = train_references(cfg, progress=_stderr_progress if args.verbose else None)
    print(
        f"dataset {out['dataset']}  model {out['model']}  forget class {out['forget_class']} "
        f"({out['forget_class_name']})  |D_f| {out['forget_count']}  device {out['device']}"
    )
    print(f"{'model':<9} {'A_test':>7} {'A_r':>7} {'A_f':>7} {'seconds':>8}  source")
    for name in ("original", "gold"):
        m = out["models"][name]
        print(
            f"{name:<9} {m['acc_test']:7.2f} {m['acc_remain']:7.2f} {m['acc_forget']:7.2f} {m['seconds']:8.1f}  "
            f"{'cache' if m['cached'] else 'trained'}"
        )
    return 0


def add_method_args(p: argparse.ArgumentParser) -> None:
    """A --<method>-<setting> flag for every setting of every registered method."""
    from .methods import METHODS

    for name in METHODS.names():
        add_config_args(p, METHODS.get(name).config_cls, prefix=name, title=f"method {name}")


def cmd_run(args) -> int:
    from .jobs.pipeline import execute, start
    from .methods import METHODS, ordered, primary_method

    own = getattr(args, "original_weights", None)  # your own model: the primary method alone unless --methods says more
    cfg = run_config_from_args(args, args.methods or ([primary_method()] if own else ordered(METHODS.names())))
    run = start(cfg)
    # this process owns the run from now on: if it dies before execute() marks it running, the run must
    # read as interrupted, not as queued forever
    run.set_status(pid=os.getpid())
    result = execute(run, progress=None if args.json else _stderr_progress)
    print(store.json_text(result) if args.json else _any_summary(run, result))
    return 0


def _any_summary(run: store.Run, result: dict) -> str:
    """The run's summary: a run on the user's own model from its result; any other from metrics.json as stored
    (the schema's typed model)."""
    if "own" in result:  # a run on the user's own model
        from .ownmodel.source import summary

        return summary(result)
    return _summary(run.metrics_model())


def cmd_execute(args) -> int:
    from .jobs.pipeline import execute

    run = store.open_run(args.run_id)
    result = execute(run, progress=None)
    print(_any_summary(run, result))
    return 0


def cmd_sweep(args) -> int:
    from .jobs.sweep import sweep
    from .methods import METHODS, ordered

    cfg = run_config_from_args(args, args.methods or ordered(METHODS.names()))
    if args.sweep_id is not None:
        store.check_run_id(args.sweep_id)
    out = sweep(
        cfg,
        args.classes,
        progress=_stderr_progress if not args.quiet else None,
        seeds=args.seeds,
        sweep_id=args.sweep_id,
        forget_counts=args.forget_counts,
        tuning_classes=args.tuning_classes,
        executor=args.executor,
        ray_address=args.ray_address,
        ray_cpus_per_task=args.ray_cpus_per_task,
    )
    print(out["markdown"])
    print(f"\nwritten: {out['markdown_path']} and {out['csv_path']}", file=sys.stderr)
    if out["failed"]:
        print(
            f"error: {len(out['failed'])} of {len(out['failed']) + len(out['results'])} runs failed "
            f"(listed under 'Failed runs')",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_runs(args) -> int:
    items = store.list_runs()
    if not items:
        print(f"no runs in {store.runs_root()}")
        return 0
    width = max(20, *(len(r.run_id) for r in items))
    print(f"{'run':<{width}} {'state':<11} {'stage':<14} {'progress':>8}  error")
    for r in items:
        stage = "" if r.stage in (r.state, "complete") else r.stage  # where an unfinished run is (or stopped)
        extra = r.error if r.error and r.state in ("failed", "interrupted", "damaged") else ""
        print(f"{r.run_id:<{width}} {r.state:<11} {stage:<14} {100 * r.progress:7.1f}%  {extra}".rstrip())
    return 0


def cmd_demo(args) -> int:
    """The bundled demo (package data): installed into the run store as a finished run, then summarised."""
    from . import demo

    run = demo.install()
    print(_summary(run.metrics_model()))
    print(f"stored as run {run.id} in {store.runs_root()}: `tmu runs` lists it, and the dashboard opens it")
    return 0


def cmd_cancel(args) -> int:
    run = store.open_run(args.run_id)
    state = run.status().get("state")
    if state not in ("queued", "running"):
        raise TMUError(f"run {run.id} is {state}; only a queued or running run can be cancelled")
    run.request_cancel()
    print(f"cancel requested for {run.id}")
    return 0


def _num(x: float | None) -> float:
    """A stored number, or NaN where the run has none (printed as nan, not a crash)."""
    return float("nan") if x is None else x


def _summary(metrics: MetricsFile) -> str:
    from .evaluate.verdict import verdict
    from .methods import display, primary_method

    r = metrics
    lines = [
        f"run {r.run_id}  ({r.dataset}, {r.model}, class {r.forget_class} {r.forget_class_name}, "
        f"|D_f| {r.forget_count}, device {r.device})",
        f"{'model':<14} {'A_test':>7} {'A_r':>7} {'A_f':>7} {'|delta|':>8} {'agree':>6} {'act.dist':>8} "
        f"{'MIA':>6} {'MIA AUC':>7} {'sec':>7}",
    ]
    for name, m in r.models.items():
        mark = "†" if display(name).kind == "control" else ""
        lines.append(
            f"{name + mark:<14} {m.acc_test:7.2f} {m.acc_remain:7.2f} {m.acc_forget:7.2f} "
            f"{_num(m.abs_delta):8.2f} {_num(m.sample_agreement):6.1f} {_num(m.activation_distance):8.4f} "
            f"{m.mia:6.1f} {_num(m.mia_auc):7.1f} {m.seconds:7.1f}"
        )
    if any(display(n).kind == "control" for n in r.models):
        lines.append("† control (reads gold or chooses at random): never a candidate for 'closest to gold'")
    for name, why in r.diverged.items():
        lines.append(f"{name:<14} no results: {why}")
    v = verdict(r)
    lines.append(f"verdict: {v.headline()}")
    lines += [f"  {s}" for s in v.sentences()]
    t: TMUSummary | None = getattr(r, primary_method(), None)  # stored under the primary method's name
    if t:
        cost = f"  cost ratio {r.cost_ratio:.3f}" if r.cost_ratio else ""
        lines.append(
            f"TMU label accuracy {t.label_accuracy:.1f}%  predicted easy/hard {t.pred_easy}/{t.pred_hard}"
            f"  gold hard {t.gold_hard}  |D_a| {t.aux_count}{cost}"
        )
        fid = t.twin_fidelity
        if fid and fid.twin_acc_aux is not None:
            lines.append(
                f"twin fidelity: M_t on D_a {fid.twin_acc_aux:.1f}% (loss {_num(fid.twin_loss_aux):.3f}); "
                f"M_o on D_f {_num(fid.original_acc_forget):.1f}% (loss {_num(fid.original_loss_forget):.3f})"
                + (f"; {fid.twin_epochs:g} twin epochs" if fid.twin_epochs is not None else "")
                + (f", {fid.bags} twins pooled" if fid.bags > 1 else "")
            )
        if t.forecast is not None:
            from .tmu.forecast import forecast_words

            gold = r.models.get("gold")
            lines.append(forecast_words(t.forecast) + (f"; gold's A_f {gold.acc_forget:.1f}%" if gold else ""))
        if t.decision_rule:
            lines.append(f"decision rule: {t.decision_rule}")
        lines += [f"warning: {w}" for w in t.warnings]
    return "\n".join(lines)


def _stderr_progress(p) -> None:
    try:
        print(f"[{p.stage}] {100 * p.fraction:5.1f}% {p.message}", file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):  # `2>&1 | head -1` left: progress is optional, the run goes on
        sys.stderr = open(os.devnull, "w")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), not the 100-line usage block of `run`."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _sub_parser(**kwargs) -> OneLineParser:
    """A subcommand's parser: one-line errors, and no abbreviations (argparse's default would read
    `--gold none` as `--gold-seeds none`)."""
    return OneLineParser(allow_abbrev=False, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tmu", description="Twin Machine Unlearning from the command line", allow_abbrev=False)
    # no dest: a missing command is then reported with the valid commands, "{datasets,models,...}";
    # every subcommand's parser is a OneLineParser that refuses abbreviated flags too
    sub = parser.add_subparsers(required=True, parser_class=_sub_parser)
    sub.add_parser("datasets", help="list datasets").set_defaults(fn=cmd_datasets)
    sub.add_parser("models", help="list models").set_defaults(fn=cmd_models)
    sub.add_parser("methods", help="list unlearning methods").set_defaults(fn=cmd_methods)
    p = sub.add_parser("train", help="train (or load cached) original and gold models and print their accuracies")
    add_run_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="print training progress on stderr")
    p.set_defaults(fn=cmd_train)
    for name, fn, helptext in (
        ("run", cmd_run, "run TMU and the baselines on one forget set"),
        ("sweep", cmd_sweep, "run every forget class and write the paper's tables"),
    ):
        p = sub.add_parser(name, help=helptext)
        add_run_args(p)
        p.add_argument("--methods", nargs="+", help="subset of methods (default: all)")
        p.add_argument(
            "--mechanism", choices=["randlabel", "neggrad", "heldout_kl"], help="TMU's forget mechanism on hard samples"
        )
        p.add_argument(
            "--gold-seeds",
            type=int,
            default=1,
            metavar="K",
            help="train K gold models (training seeds differ) for soft truth p_i, gold-vs-gold agreement "
            "and the label-accuracy ceiling (default 1: the run's gold alone)",
        )
        if name == "run":
            add_config_args(p, OwnModelConfig, title="your own model (TMU on a model the project did not train)")
            p.add_argument("--json", action="store_true", help="print the result as one JSON object")
            p.add_argument("--name", default="", help="a label for the run (part of its id)")
        else:
            p.add_argument(
                "--classes",
                default="all",
                help="'all' or comma-separated class names or indices (#N: always index N; a name wins over an index)",
            )
            p.add_argument(
                "--sweep-id", default=None, help="name of the sweep's folder (default: made from the settings)"
            )
            p.add_argument("--seeds", type=int, nargs="+", help="several seeds (default: --seed alone)")
            p.add_argument(
                "--tuning-classes",
                default="",
                metavar="CLASSES",
                help="comma-separated classes used to choose defaults (e.g. 3,8); the tables "
                "summarise them apart from the held-out classes",
            )
            p.add_argument(
                "--forget-counts",
                type=int,
                nargs="+",
                help="several forget-set sizes, e.g. 100 500 1000 (default: --forget-count alone)",
            )
            p.add_argument("--quiet", action="store_true", help="no progress on stderr")
            p.add_argument(
                "--executor",
                choices=["local", "ray"],
                default="local",
                help="local: one run after another in this process; ray: each run is a Ray task",
            )
            p.add_argument(
                "--ray-address",
                default=None,
                help="a running Ray cluster (e.g. HOST:6379 from `ray start --head`; default: start a "
                "local Ray instance sized to this machine); needs --executor ray",
            )
            p.add_argument(
                "--ray-cpus-per-task",
                type=int,
                default=None,
                metavar="N",
                help="CPUs (torch threads) per Ray task (default: as many as a local run uses, so the "
                "tables equal the local executor's; fewer run tasks side by side, with float "
                "rounding that differs in the last digits)",
            )
        add_method_args(p)
        p.set_defaults(fn=fn)
    p = sub.add_parser("execute", help="execute a run created by the dashboard (its config.json)")
    p.add_argument("run_id")
    p.set_defaults(fn=cmd_execute)
    sub.add_parser("runs", help="list stored runs").set_defaults(fn=cmd_runs)
    sub.add_parser(
        "demo", help="put the bundled digits demo run into the run store (no training) and print its results"
    ).set_defaults(fn=cmd_demo)
    p = sub.add_parser("cancel", help="ask a running run to stop")
    p.add_argument("run_id")
    p.set_defaults(fn=cmd_cancel)
    return parser


def _worker_embedding(argv: list[str]) -> int:
    from .jobs.embedding import worker_main

    return worker_main(argv)


def _worker_sandbox(argv: list[str]) -> int:
    from .ownmodel.child import worker_main

    return worker_main(argv)


def _worker_ray(argv: list[str]) -> int:
    from .jobs.ray_executor import worker_main

    return worker_main(argv)


# Hidden commands, started by jobs.launch as `python -m tmu_core <name> ...`: the UMAP worker (which logs
# its progress at INFO into the run's log), the Ray driver of a dashboard run, and the sandboxed child of a run
# whose model is code.
WORKERS = {
    "_worker-embedding": (_worker_embedding, logging.INFO),
    "_worker-ray": (_worker_ray, logging.WARNING),
    "_worker-sandbox": (_worker_sandbox, logging.WARNING),  # a run whose model is code (tmu_core.ownmodel.sandbox)
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in WORKERS:
        worker, level = WORKERS[argv[0]]
        return run_entry(lambda: worker(argv[1:]), level=level)

    def command() -> int:  # building the parser imports torch (seconds): a stop signal then is one line too
        args = build_parser().parse_args(argv)
        return args.fn(args)

    return run_entry(command)
