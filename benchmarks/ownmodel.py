"""Own-model benchmark: TMU on a model the project did not train, with no gold retrain.

    OMP_NUM_THREADS=1 python benchmarks/ownmodel.py                  # CIFAR-10 copy, 500 train images per class
    OMP_NUM_THREADS=1 python benchmarks/ownmodel.py --per-class 100  # a quicker look

Lays the CIFAR-10 JPEG copy (--source, default ../shared/data/cifar10 from the working folder) out as train/ (500 per class) aux/ (50 per class,
never trained on) test/ (100 per class) of symlinks, trains small_cnn on train/ and saves its state dict (the
"user's" model), then for two deletion requests, 100 images of one class (cat) and 100 spread over all ten
classes (10 each):
  1. retrains gold from scratch with the project's recipe on train/ minus the request, timed (what the user
     wants to avoid), and saves it as a state dict;
  2. `run --original-weights W --forget-list F --gold none --json`: TMU's seconds (its audit extra, the feature
     ablation, left out as in cost_ratio) against the gold retrain's: target at most 0.1;
  3. the same with `--gold-weights GOLD`: the alignment numbers (|delta|, label accuracy, agreement, MIA).
Writes benchmarks/results/ownmodel-cifar10.md and .json with every command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tmu_core import store  # noqa: E402
from tmu_core.config import DataConfig, OwnModelConfig  # noqa: E402
from tmu_core.data.recipes import default_train_config  # noqa: E402
from tmu_core.methods import primary_method  # noqa: E402
from tmu_core.models import build_model  # noqa: E402
from tmu_core.ownmodel.layout import load_user_data  # noqa: E402
from tmu_core.references import gold_seed  # noqa: E402
from tmu_core.store.schema import MetricsFile  # noqa: E402
from tmu_core.train import fit, seed_everything  # noqa: E402

# today's single-class result on the full CIFAR-10 copy (45k training images, class cat, 100 forgotten, seed 0)
TODAY = RESULTS / "cifar10-small_cnn-class3.json"


def layout(source: Path, dest: Path, per_class: int, aux: int, test: int) -> None:
    for cls in sorted(p.name for p in (source / "train").iterdir() if p.is_dir()):
        files = sorted((source / "train" / cls).iterdir())
        tests = sorted((source / "test" / cls).iterdir())[:test]
        for split, chosen in (
            ("train", files[:per_class]),
            ("aux", files[per_class : per_class + aux]),
            ("test", tests),
        ):
            d = dest / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                link = d / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())


def train(data, ids, seed: int, kind: str) -> tuple[torch.nn.Module, float]:
    cfg = default_train_config("imagefolder")
    seed_everything(seed)
    net = build_model("small_cnn", data.channels, data.num_classes, data.size, data.mean, data.std)
    t = time.perf_counter()
    fit(
        net, data.x[torch.as_tensor(ids)], data.y[torch.as_tensor(ids)], cfg, torch.device("cpu"), seed=seed, stage=kind
    )
    return net.eval(), time.perf_counter() - t


def cli(args: list[str], env: dict) -> tuple[dict, float, str]:
    cmd = [sys.executable, "-m", "tmu_core", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout), wall, "python -m tmu_core " + shlex.join(args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--source", default="../shared/data/cifar10", help="the CIFAR-10 image folder (train/ and test/ class folders)"
    )
    ap.add_argument("--work", default="/tmp/ownmodel-bench", help="folder for the layout, weights and run store")
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--aux-per-class", type=int, default=50)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS / "ownmodel-cifar10"))
    a = ap.parse_args()
    work = Path(a.work)
    root = work / "data"
    layout(Path(a.source), root, a.per_class, a.aux_per_class, a.test_per_class)
    env = {**os.environ, "TMU_RUNS_DIR": str(work / "runs"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    os.environ["TMU_RUNS_DIR"] = env["TMU_RUNS_DIR"]
    torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    data = load_user_data(DataConfig(dataset="imagefolder", data_root=str(root), image_size=32), OwnModelConfig())
    weights = work / "original.pt"
    if not weights.exists():
        net, secs = train(data, data.train_ids, 0, "original")
        torch.save(net.state_dict(), weights)
        (work / "original.json").write_text(json.dumps({"seconds": secs}))
    original_seconds = json.loads((work / "original.json").read_text())["seconds"]
    n_tr = len(data.train_ids)
    by_class = {c: [p for p in data.paths[:n_tr] if p.startswith(c + "/")] for c in data.classes}
    requests = {
        "one class (cat)": by_class["cat"][:100],
        "all ten classes (10 each)": [p for c in data.classes for p in by_class[c][:10]],
    }
    base = [
        "run",
        "--dataset",
        "imagefolder",
        "--data-root",
        str(root),
        "--image-size",
        "32",
        "--model",
        "small_cnn",
        "--original-weights",
        str(weights),
        "--device",
        "cpu",
        "--json",
    ]
    out = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "threads": env["OMP_NUM_THREADS"],
        "load_average_at_start": os.getloadavg()[0],
        "per_class": a.per_class,
        "aux_per_class": a.aux_per_class,
        "test_per_class": a.test_per_class,
        "original_train_seconds": original_seconds,
        "rows": [],
        "command": "OMP_NUM_THREADS=1 python benchmarks/ownmodel.py " + shlex.join(sys.argv[1:]),
    }
    index = {p: k for k, p in enumerate(data.paths[:n_tr])}
    # the timing first (gold retrain, then --gold none) for both requests, then the --gold-weights runs; the
    # results files are rewritten after every step, so a long run leaves what it has measured
    for i, (label, paths) in enumerate(requests.items()):
        flist = work / f"forget-{i}.txt"
        flist.write_text("\n".join(paths) + "\n")
        remain = np.setdiff1d(data.train_ids, [index[p] for p in paths])
        gold, gold_s = train(data, remain, gold_seed(0, 0), "gold")
        gold_path = work / f"gold-{i}.pt"
        torch.save(gold.state_dict(), gold_path)
        none, none_wall, none_cmd = cli([*base, "--forget-list", str(flist), "--gold", "none"], env)
        typed = MetricsFile.model_validate(none)
        tmu_s = typed.models[primary_method()].seconds
        ablation = getattr(typed, primary_method()).audit_seconds  # the ablation runs on request only
        out["rows"].append(
            {
                "request": label,
                "forget_list": str(flist),
                "gold_path": str(gold_path),
                "gold_retrain_seconds": gold_s,
                "tmu_seconds": tmu_s,
                "tmu_seconds_without_ablation": tmu_s - ablation,
                "ratio": (tmu_s - ablation) / gold_s,
                "run_wall_seconds": none_wall,
                "run_wall_ratio": none_wall / gold_s,
                "command_gold_none": none_cmd,
                "gold_none": none,
            }
        )
        print(
            f"{label}: TMU {tmu_s - ablation:.1f}s (+{ablation:.1f}s ablation) vs gold retrain {gold_s:.1f}s "
            f"-> {(tmu_s - ablation) / gold_s:.3f}",
            flush=True,
        )
        write(out, a.out)
    for row in out["rows"]:
        with_gold, _, gold_cmd = cli(
            [*base, "--forget-list", row["forget_list"], "--gold-weights", row["gold_path"]], env
        )
        row.update(command_gold_weights=gold_cmd, gold_weights=with_gold)
        write(out, a.out)
    print(markdown(out))


def write(out: dict, stem: str) -> None:
    Path(stem + ".json").write_text(store.json_text(out, indent=1))
    Path(stem + ".md").write_text(markdown(out))


def _f(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"


def markdown(out: dict) -> str:
    lines = [
        f"# TMU on your own model, no gold retrain (CIFAR-10 copy, {out['per_class']} train images per class)",
        "",
        f"{out['date']}, {out['machine']}, {out['threads']} thread(s), load average {out['load_average_at_start']:.1f} "
        f"at the start (a shared 2-core machine: seconds are of contended CPU). Command: `{out['command']}`",
        "",
        f"Layout: train/ {out['per_class']} per class (the model trained on these), aux/ {out['aux_per_class']} per "
        f"class (never trained on), test/ {out['test_per_class']} per class. The user's model: small_cnn trained on "
        f"train/ ({out['original_train_seconds']:.0f} s), saved as a state dict.",
        "",
        "## Seconds: TMU with --gold none against the project's gold retrain of the same data (target <= 0.1)",
        "",
        "| request | gold retrain s | TMU s (no ablation) | ratio | whole run s (load, TMU, eval, write) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in out["rows"]:
        lines.append(
            f"| {r['request']} | {r['gold_retrain_seconds']:.1f} | {r['tmu_seconds_without_ablation']:.1f} | "
            f"{r['ratio']:.3f} | {r['run_wall_seconds']:.1f} | {r['run_wall_ratio']:.3f} |"
        )
    lines += [
        "",
        "## With --gold-weights (the gold retrain above): alignment",
        "",
        "| request | model | A_test | A_r | A_f | gold A_f | abs delta | agreement | MIA | TMU label acc. | predicted/gold hard |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [r for r in out["rows"] if "gold_weights" in r]:
        g = r["gold_weights"]
        o = g[primary_method()]  # the split (per class for a request over several) as every run stores it
        gold_af = g["models"]["gold"]["acc_forget"]
        gold_hard = o.get("gold_hard") or 0
        for name in ("original", "tmu"):
            m = g["models"][name]
            extra = f"{_f(o.get('label_accuracy'))} | {o['pred_hard']}/{gold_hard}" if name == "tmu" else " | "
            lines.append(
                f"| {r['request']} | {name} | {_f(m['acc_test'])} | {_f(m['acc_remain'])} | {_f(m['acc_forget'])} | "
                f"{_f(gold_af)} | {_f(m['abs_delta'])} | {_f(m.get('sample_agreement'))} | {_f(m['mia'])} | {extra} |"
            )
    last = out["rows"][-1].get("gold_weights", {})
    multi = (last.get(primary_method()) or {}).get("per_class") or {} if len(out["rows"]) > 1 else {}
    if multi:
        lines += [
            "",
            "Per class (all-ten-classes request, --gold-weights): predicted hard / gold hard (label accuracy)",
            "",
        ]
        lines.append(
            ", ".join(
                f"{c} {b['pred_hard']}/{b.get('gold_hard', '-')} ({_f(b.get('label_accuracy'), 0)}%)"
                for c, b in multi.items()
            )
        )
    if TODAY.exists():
        t = json.loads(TODAY.read_text())
        m = t["models"]["tmu"]
        lines += [
            "",
            f"Today's single-class result beside it ({TODAY.name}: the project's own original and gold on the "
            f"full CIFAR-10 copy, class {t['forget_class_name']}, {t['forget_count']} forgotten, seed {t['seed']}): "
            f"TMU |delta| {m['abs_delta']:.1f}, agreement {_f(m.get('sample_agreement'))}, label accuracy "
            f"{t['tmu']['label_accuracy']:.1f}%, cost ratio {_f(t.get('cost_ratio'), 3)}.",
        ]
    lines += ["", "Warnings the --gold none runs gave:", ""]
    for r in out["rows"]:
        for w in r["gold_none"]["own"].get("warnings", [])[:10]:
            lines.append(f"- {r['request']}: {w}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
