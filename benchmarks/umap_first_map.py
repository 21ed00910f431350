"""How long the dashboard's first UMAP map takes in a fresh process (what the Embeddings page waits for).

    python benchmarks/umap_first_map.py                 # synthetic digits-sized activations
    python benchmarks/umap_first_map.py --run RUN_ID    # a stored run's activations (TMU_RUNS_DIR)

Each try is a new `python` process that imports tmu_core.jobs.embedding, turns on numba's on-disk cache and
fits one map (embedding.fit_map), as the background job (`tmu _worker-embedding`) does; the first fit in a process pays for numba compiling UMAP's kernels. Tries run
one after another, so the later ones show what numba's on-disk cache saves. Prints one line per try and
writes nothing else. Timings, not assertions: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
from tmu_core.jobs import embedding
embedding.use_compiled_code_cache()
t1 = time.perf_counter()
if sys.argv[1]:
    from tmu_core import store
    emb = store.open_run(sys.argv[1]).embeddings()["emb_" + sys.argv[2]]
else:  # 10 clusters of 120 points in 128-d, like the digits demo's stored activations
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (10, 128))
    emb = np.concatenate([c + rng.normal(0, 1, (120, 128)) for c in centres]).astype(np.float32)
embedding.fit_map(emb, 0)
t2 = time.perf_counter()
print(f"{len(emb)} {t1 - t0:.2f} {t2 - t1:.2f}")
"""


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--run", default="", help="a stored run's id (default: synthetic activations)")
    p.add_argument("--model", default="tmu", help="whose activations (original, gold, tmu)")
    p.add_argument("--tries", type=int, default=3, help="fresh processes, one after another")
    args = p.parse_args()
    for i in range(1, args.tries + 1):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, args.run, args.model], cwd=ROOT, capture_output=True, text=True, check=True
        )
        n, imp, fit = out.stdout.split()
        print(
            f"try {i}: {int(n)} points · import {float(imp):.1f} s · fit {float(fit):.1f} s · "
            f"process {time.perf_counter() - start:.1f} s"
        )


if __name__ == "__main__":
    main()
