"""Sweeps: one run per (forget class, seed, forget count), then the paper's tables (evaluate.paper_tables) over
their results, written as Markdown and CSV into the sweep's folder of the run store.

`plan` lists the runs of a sweep as RunConfigs; an executor turns a list of RunConfigs into their results
in the same order, a run that did not complete being a failure record (its class, seed, count and error:
the others still finish, and the tables list it under "Failed runs"). The local executor runs them one after
another in this process; the Ray executor (`ray_executor`, imported only when asked for) runs each as a Ray
task; both give the same results for the same configs.
"""

from __future__ import annotations

import datetime as _dt
import platform
from collections import Counter
from collections.abc import Callable, Sequence

import pandas as pd

from .. import store
from ..config import RunConfig
from ..data import class_ref, load_dataset, resolve_class
from ..errors import TMUError
from ..evaluate.paper_tables import md_table, tables, to_markdown
from ..store.schema import FailedRun, SweepResult
from .pipeline import execute, failure, start
from .ray_executor import RayOptions, run_on_ray  # Ray is imported only when this executor is used


def classes_line(meta: dict) -> str:
    """Which classes chose the defaults (tuning) and which are held out, as a results file states them."""
    tuning = meta.get("tuning_classes") or []
    if not tuning:
        return "tuning classes: none named (every class is summarised together)"
    held = meta.get("held_out_classes", [])
    return (
        f"tuning classes (used to choose defaults): {', '.join(map(str, tuning))}; held-out classes: "
        f"{', '.join(map(str, held)) or 'none'}"
    )


Executor = Callable[..., list]  # (configs, progress=None, on_result=None) -> results in the configs' order


def parse_classes(spec: str, cfg: RunConfig) -> list[int]:
    data = load_dataset(cfg.data, cfg.seed)
    if spec.strip().lower() == "all":
        return list(range(data.num_classes))
    classes = [resolve_class(data, part) for part in spec.split(",") if part.strip()]
    if not classes:
        raise TMUError("no classes given; use 'all' or a comma-separated list such as 0,3,8")
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise TMUError(
            f"class(es) {', '.join(map(str, twice))} listed twice in --classes; each class is one row of the tables"
        )
    return classes


def parse_tuning(spec: str, cfg: RunConfig) -> list[int]:
    """The classes used to choose defaults ('' = none named); they may lie outside the sweep's classes."""
    if not spec or not spec.strip():
        return []
    data = load_dataset(cfg.data, cfg.seed)
    return sorted({resolve_class(data, part) for part in spec.split(",") if part.strip()})


def plan(
    cfg: RunConfig, classes: Sequence[int], seeds: Sequence[int], forget_counts: Sequence[int], sweep_id: str
) -> list[RunConfig]:
    """The runs of a sweep, seed-major then forget count then class, each named after the sweep."""
    out = []
    for seed in seeds:
        for n in forget_counts:
            for c in classes:
                # the class as its index, never re-read as a name
                forget = cfg.forget.model_copy(update={"forget_class": class_ref(c), "forget_count": n})
                name = f"{sweep_id}-c{c}-n{n}-s{seed}"
                out.append(cfg.model_copy(update={"seed": seed, "forget": forget, "name": name}))
    return out


def local_executor(configs: list[RunConfig], progress=None, on_result=None) -> list[dict]:
    """Run the configs one after another in this process; a run that fails is recorded and the next starts."""
    results = []
    for run_cfg in configs:
        run = None
        try:
            run = start(run_cfg)
            results.append(execute(run, progress=progress))
        except TMUError as exc:
            results.append(failure(run, run_cfg, str(exc)))
        except Exception as exc:  # a bug in one run: its error.log has the details; the sweep goes on
            results.append(failure(run, run_cfg, f"unexpected {exc.__class__.__name__}: {exc}"))
        if on_result:
            on_result(results)
    return results


def ray_executor(
    configs: list[RunConfig],
    progress=None,
    on_result=None,
    address: str | None = None,
    cpus_per_task: int | None = None,
) -> list[dict]:
    """Each config is one task on the Ray cluster at `address` (None: a local Ray instance sized to this machine)
    asking for `cpus_per_task` CPUs (None: as many threads as a local run here uses, so the numbers are the same)."""

    return run_on_ray(
        configs, progress=progress, on_result=on_result, options=RayOptions(address=address, num_cpus=cpus_per_task)
    )


EXECUTORS: dict[str, Executor] = {"local": local_executor, "ray": ray_executor}


def sweep(
    cfg: RunConfig,
    classes: str = "all",
    progress=None,
    sweep_id: str | None = None,
    seeds: Sequence[int] | None = None,
    forget_counts: Sequence[int] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    tuning_classes: str = "",
    ray_cpus_per_task: int | None = None,
) -> dict:
    """Run `cfg` for every class x seed x forget count; write results.json and the tables (Markdown + CSV).

    `tuning_classes` names the classes used to choose defaults: they are summarised apart from the others.
    Runs that fail are kept apart (`failed`: class, seed, count, error) and listed below the tables; the
    sweep raises only when none completed.
    """
    if executor not in EXECUTORS:
        raise TMUError(f"unknown executor '{executor}'; valid: {', '.join(EXECUTORS)}")
    if (ray_address is not None or ray_cpus_per_task is not None) and executor != "ray":
        raise TMUError("a Ray address or CPUs per Ray task need the ray executor (--executor ray)")
    options = {"address": ray_address, "cpus_per_task": ray_cpus_per_task} if executor == "ray" else {}
    chosen = parse_classes(classes, cfg)
    tuning = parse_tuning(tuning_classes, cfg)
    seeds = list(seeds) if seeds else [cfg.seed]
    counts = list(forget_counts) if forget_counts else [cfg.forget.forget_count]
    for what, values in (("--seeds", seeds), ("--forget-counts", counts)):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:  # the same run twice would count as two samples and shrink every confidence interval
            raise TMUError(f"{', '.join(map(str, twice))} listed twice in {what}; give each value once")
    exact = sweep_id is not None
    sweep_id = (
        sweep_id
        or f"sweep-{cfg.data.dataset}-{cfg.train.model}-n{counts[0]}-s{seeds[0]}-"
        f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    folder = store.Sweep.claim(sweep_id, exact)  # atomic: no other sweep's results are ever replaced
    sweep_id = folder.id
    meta = {
        "sweep_id": sweep_id,
        "classes": chosen,
        "seeds": seeds,
        "forget_counts": counts,
        "executor": executor,
        "tuning_classes": tuning,
        "held_out_classes": [c for c in chosen if c not in tuning],
        "gold_seeds": cfg.gold_seeds,
    }
    try:
        outcomes = EXECUTORS[executor](
            plan(cfg, chosen, seeds, counts, sweep_id),
            progress=progress,
            on_result=lambda done: folder.save_results({**meta, **_split(done)}),
            **options,
        )
    except BaseException:
        folder.release()  # nothing written (e.g. Ray unreachable): the id may be used again
        raise
    parts = _split(outcomes)
    folder.save_results({**meta, **parts})
    results, failed = parts["results"], parts["failed"]
    if not results:
        raise TMUError(
            f"no run of sweep {sweep_id} completed; first error (class {failed[0]['forget_class']}, "
            f"seed {failed[0]['seed']}): {failed[0]['error']}"
        )
    frames = tables(results, tuning)
    markdown, files = tables_with_failures(frames, sweep_header(meta, results), failed)
    md_path, csv_path = folder.save_tables(markdown, files)
    return {
        "sweep_id": sweep_id,
        "results": results,
        "failed": failed,
        "tables": frames,
        "markdown": markdown,
        "markdown_path": str(md_path),
        "csv_path": str(csv_path),
    }


def sweep_header(meta: dict, results: list[dict], machine: bool = True) -> str:
    """The tables' heading: what the sweep ran (from its meta and its first result) and, for tables made where
    the sweep ran, on which machine (an export made later leaves it out)."""
    first = results[0]
    where = f", machine {platform.machine()} / {platform.processor() or 'cpu'}" if machine else ""
    return (
        f"## Sweep {meta['sweep_id']}\n\ndataset {first['dataset']}, model {first['model']}, |D_f| = "
        f"{', '.join(map(str, meta['forget_counts']))} per class, seeds {', '.join(map(str, meta['seeds']))}, "
        f"{golds_line(results)}, device {first['device']}{where}\n\n"
        f"{classes_line(meta)}"
    )


def golds_line(results: list[dict]) -> str:
    """'3 gold model(s) per run', or, for runs merged from sweeps of different K, how many runs had each K."""
    ks = Counter((r.get("gold_ensemble") or {}).get("k", 1) for r in results)
    if len(ks) == 1:
        return f"{next(iter(ks))} gold model(s) per run"
    return "gold models per run: " + ", ".join(f"{k} in {n} runs" for k, n in sorted(ks.items(), reverse=True))


def tables_with_failures(frames: dict[str, pd.DataFrame], header: str, failed: list[dict]):
    """(Markdown of the tables under `header` with the failed runs after them, the frames to save as CSV with a
    `failed` frame when some run failed): what a sweep and an exported results file write."""
    files = {**frames, **({"failed": pd.DataFrame(failed)} if failed else {})}
    return to_markdown(frames, header) + failed_markdown(failed), files


def _split(outcomes) -> dict:
    """Completed results (what the tables and the dashboard read) apart from failure records, each built as its
    typed record (`SweepResult`, `FailedRun`) and written as that record dumps it."""

    def typed(model, r) -> dict:
        return model.model_validate(store.json_ready(r)).model_dump(mode="json", exclude_unset=True)

    return {
        "results": [typed(SweepResult, r) for r in outcomes if not r.get("failed")],
        "failed": [typed(FailedRun, r) for r in outcomes if r.get("failed")],
    }


def failed_markdown(failed: list[dict]) -> str:
    """The runs that did not complete, one line each (empty when all did)."""
    if not failed:
        return ""
    cols = ["forget_class", "seed", "forget_count", "run_id", "error"]
    return "\n### Failed runs\n\n" + md_table(pd.DataFrame(failed)[cols]) + "\n"
