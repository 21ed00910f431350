"""Summarise the GPU check's per-class JSON results (benchmarks/gpu_check.sh) as Markdown tables.

python benchmarks/gpu_summary.py <folder with class*.json> "<knobs used>"
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

from tmu_core.evaluate.paper_tables import tables, to_markdown


def main(folder: str, knobs: str = "") -> str:
    results = [json.loads(Path(f).read_text()) for f in sorted(glob.glob(f"{folder}/class*.json"))]
    r0 = results[0]
    header = (
        f"## GPU check: {r0['dataset']} (CIFAR-10 JPEG copy), {r0['model']}, device {r0['device']}\n\n"
        f"Command: `{knobs} bash benchmarks/gpu_check.sh`; recipe {r0['train_config']}."
    )
    md = to_markdown(tables(results), header)
    lines = [
        "",
        "### Wall seconds (original/gold: training; methods: unlearning) and cost ratio",
        "",
        "| class | " + " | ".join(r0["models"]) + " | cost_ratio |",
        "|---" * (len(r0["models"]) + 2) + "|",
    ]
    for r in results:
        lines.append(
            f"| {r['forget_class']} | "
            + " | ".join(f"{m['seconds']:.1f}" for m in r["models"].values())
            + f" | {r['cost_ratio']:.3f} |"
        )
    for r in results:
        lines.append(
            f"\nclass {r['forget_class']}: TMU stages (s) {r['tmu']['stage_seconds']}; original from cache: "
            f"{r['cache']['original_cached']}; label accuracy {r['tmu']['label_accuracy']:.1f}%; "
            f"|D_a| {r['tmu']['aux_count']} (requested {r['tmu']['aux_sizing']['requested']})"
        )
    md += "\n".join(lines) + "\n"
    Path(folder, "gpu_check.md").write_text(md)
    return md


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
