"""Local vs Ray executor on one machine, side by side in one run: the same sweep three times, each in a fresh run
store (so each trains its own original and gold models): local, Ray with its default CPUs per task (as many
threads as the local run: the tables must be identical), and Ray with one CPU per task (tasks side by side);
wall times and whether each Ray sweep's tables equal the local ones.

    python benchmarks/executors.py --dataset digits --classes 1,2,3 --forget-count 50

Writes benchmarks/results/executors-<dataset>.md with the commands, the machine and the two timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def timed_sweep(args: list[str]) -> tuple[float, str]:
    """Wall seconds and the tables (without the header naming the sweep and its executor) of one sweep."""
    with tempfile.TemporaryDirectory() as store:
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "tmu_core", "sweep", *args, "--quiet", "--sweep-id", "bench"],
            cwd=ROOT,
            env={**os.environ, "TMU_RUNS_DIR": store},
            capture_output=True,
            text=True,
            check=True,
        )
        return time.perf_counter() - t, out.stdout.split("### ", 1)[1]


def torch_threads() -> int:
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--classes", default="1,2,3")
    p.add_argument("--forget-count", default="50")
    a = p.parse_args()
    base = ["--dataset", a.dataset, "--classes", a.classes, "--forget-count", a.forget_count, "--seed", "0"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    local_s, local_tables = timed_sweep(base)
    ray_s, ray_tables = timed_sweep([*base, "--executor", "ray"])
    one_s, one_tables = timed_sweep([*base, "--executor", "ray", "--ray-cpus-per-task", "1"])
    for name, text in (("local", local_tables), ("ray", ray_tables), ("ray-1cpu", one_tables)):  # for a diff
        (RESULTS / f"executors-{a.dataset}-{name}-tables.md").write_text(text)
    same = {True: "yes", False: "no"}
    lines = [
        f"# Local vs Ray executor, {a.dataset}",
        "",
        f"- command: `python benchmarks/executors.py --dataset {a.dataset} --classes {a.classes} "
        f"--forget-count {a.forget_count}`",
        f"- date: {dt.datetime.now().isoformat(timespec='minutes')}; {os.cpu_count()} CPU cores; load average "
        f"at the end {os.getloadavg()[0]:.1f}",
        "",
        f"- torch threads of a local run: {torch_threads()}",
        "",
        "| executor | sweep command | wall time | tables identical to local |",
        "|---|---|---|---|",
        f"| local | `python -m tmu_core sweep {' '.join(base)}` | {local_s:.1f} s | — |",
        f"| Ray (local instance) | same, `--executor ray` | {ray_s:.1f} s | {same[ray_tables == local_tables]} |",
        f"| Ray, 1 CPU per task | same, `--executor ray --ray-cpus-per-task 1` | {one_s:.1f} s | "
        f"{same[one_tables == local_tables]} |",
    ]
    (RESULTS / f"executors-{a.dataset}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
