"""Time the About page's "Run it yourself": install the bundled demo (its original and gold seed the model cache),
start the demo's configuration as the button does (a background run), wait for it, and compare its numbers with
the bundle's. Prints the wall time, the machine's CPUs, torch's thread setting and the load average.

    TMU_RUNS_DIR=/tmp/demo-time/runs nice -n 10 python benchmarks/demo_time.py
"""

import json
import os
import time

from tmu_core import demo
from tmu_core.jobs import launch


def main() -> None:
    started = time.time()
    demo.install()
    run = launch.start_run(demo.config())
    while run.status().get("state") in ("queued", "running"):
        time.sleep(1)
    seconds = time.time() - started
    mine = run.read_json("metrics.json")["models"]
    bundle = json.loads((demo.bundle_root() / demo.RUN_ID / "metrics.json").read_text())["models"]
    print(
        f"state {run.status().get('state')}; {seconds:.0f} s; {os.cpu_count()} CPUs; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average {os.getloadavg()[0]:.1f}"
    )
    for name in demo.METHODS:
        a, b = mine.get(name, {}).get("abs_delta"), bundle.get(name, {}).get("abs_delta")
        print(f"{name}: |Δ| {a} (bundle {b})")


if __name__ == "__main__":
    main()
