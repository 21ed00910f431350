"""Sweeps over forget classes: one run per class, then the paper's tables (evaluate.tables) over their results,
written as Markdown and CSV into the sweep's folder of the run store."""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import replace

from .. import store
from ..config import RunConfig
from ..data import load_dataset, resolve_class
from ..errors import TMUError
from ..evaluate.tables import tables, to_markdown
from .pipeline import execute, start


def parse_classes(spec: str, cfg: RunConfig) -> list[int]:
    data = load_dataset(cfg.data, cfg.seed)
    if spec.strip().lower() == "all":
        return list(range(data.num_classes))
    classes = [resolve_class(data, part) for part in spec.split(",") if part.strip()]
    if not classes:
        raise TMUError("no classes given; use 'all' or a comma-separated list such as 0,3,8")
    return classes


def sweep(cfg: RunConfig, classes: str = "all", progress=None, sweep_id: str | None = None) -> dict:
    """Run `cfg` once per forget class; write results.json and the tables (Markdown + CSV)."""
    chosen = parse_classes(classes, cfg)
    sweep_id = sweep_id or f"sweep-{cfg.data.dataset}-{cfg.train.model}-n{cfg.forget.forget_count}-s{cfg.seed}-" \
                           f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    folder = store.Sweep(sweep_id)
    results = []
    for c in chosen:
        run_cfg = replace(cfg, forget=replace(cfg.forget, forget_class=str(c)), name=f"{sweep_id}-c{c}")
        results.append(execute(start(run_cfg), progress=progress))
        folder.save_results({"sweep_id": sweep_id, "classes": chosen, "results": results})
    frames = tables(results)
    header = (f"## Sweep {sweep_id}\n\ndataset {cfg.data.dataset}, model {cfg.train.model}, |D_f| = "
              f"{cfg.forget.forget_count} per class, seed {cfg.seed}, device {results[0]['device']}, "
              f"machine {platform.machine()} / {platform.processor() or 'cpu'}")
    markdown = to_markdown(frames, header)
    md_path, csv_path = folder.save_tables(markdown, frames)
    return {"sweep_id": sweep_id, "results": results, "tables": frames, "markdown": markdown,
            "markdown_path": str(md_path), "csv_path": str(csv_path)}
