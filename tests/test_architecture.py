"""The shape the README promises: layers that import only downwards and never in a circle (lazy imports inside
functions included) across tmu_core, ui/, pages/ and app.py, no function over 60 lines, a pipeline that names no
method, and the store as the only owner of file names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # `make test-fast`

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "tmu_core"

# The layers, lowest first. A module imports only from its own layer or the layers below it. A module belongs to
# the layer of its longest matching prefix (so tmu_core.unlearn.loop is the method contract, below TMU, while the
# methods registered in tmu_core.methods sit above TMU, which they register); a new module of tmu_core or ui/ lands
# in its package's top layer until it is placed lower.
LAYERS = (
    ("errors", ("tmu_core.errors",)),
    ("configs and the generic registry", ("tmu_core.config", "tmu_core.registry")),
    ("run store", ("tmu_core.store",)),
    ("data and architectures", ("tmu_core.data", "tmu_core.models", "tmu_core.ownmodel.hub")),
    ("training", ("tmu_core.train",)),
    ("reference models", ("tmu_core.references",)),
    (
        "measures",
        (
            "tmu_core.evaluate.metrics",
            "tmu_core.evaluate.artifacts",
            "tmu_core.evaluate.ensemble",
            "tmu_core.evaluate.evaluator",
        ),
    ),
    ("method contract and shared loop", ("tmu_core.unlearn",)),
    ("TMU's stages", ("tmu_core.tmu",)),
    ("registered methods", ("tmu_core.methods",)),
    ("tables, protocol and verdict", ("tmu_core.evaluate",)),
    ("a run's sources of data and references: the contract and the native one", ("tmu_core.jobs.sources",)),
    ("own-model runs", ("tmu_core.ownmodel",)),
    ("jobs", ("tmu_core.jobs",)),
    (
        "entry points",
        ("tmu_core", "tmu_core.demo", "tmu_core.options", "tmu_core.entry", "tmu_core.cli", "tmu_core.ownmodel.child"),
    ),
    ("dashboard helpers", ("ui.text", "ui.images", "ui.nav", "ui.palette")),
    ("tables and widgets", ("ui.tables", "ui.widgets")),
    ("charts, loaders and verdict", ("ui.charts", "ui.cache", "ui.verdict", "ui.forecast")),
    ("session state", ("ui.state",)),
    ("your-model entry, and any ui module not placed lower", ("ui", "ui.own_model")),
    ("pages", ("pages",)),
    ("router", ("app",)),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the project: tmu_core, ui/, pages/ and app.py."""
    files = [*CORE.rglob("*.py"), *(ROOT / "ui").glob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]
    return {module_name(p): p for p in files}


def layer_of(name: str) -> int | None:
    """The index in LAYERS of module `name` (its longest matching prefix), or None."""
    matches = [
        (len(prefix), i)
        for i, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if name == prefix or name.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a in sorted(graph)
        for b in sorted(graph[a])
        if layer_of(b) > layer_of(a)
    ]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every tmu_core module `name` imports, at the top or inside a function: `from .x import y` counts as
    an import of module x.y when that is a module, else of x."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    out.add(sub)
                elif target in known:
                    out.add(target)
    out.discard(name)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_cycle_finder_sees_a_cycle_through_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def with_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing a.b.c runs the packages a and a.b first: a package whose __init__ imports anything counts as
    imported too (one the importer lies in is already being imported, and an empty __init__ imports nothing)."""
    out = {}
    for name, targets in graph.items():
        out[name] = set(targets)
        for target in targets:
            parts = target.split(".")
            for k in range(1, len(parts)):
                parent = ".".join(parts[:k])
                inside = name == parent or name.startswith(parent + ".")
                if graph.get(parent) and not inside:
                    out[name].add(parent)
    return out


def graph_of_project() -> dict[str, set[str]]:
    mods = modules()
    return with_packages({n: imports_of(n, p, set(mods)) for n, p in mods.items()})


def test_a_package_s_init_counts_as_imported_with_its_modules():
    """tmu_core.methods' __init__ registers every method: a module under TMU's stages importing the contract from
    inside that package would run it first (the circle the contract's own package, tmu_core.unlearn, avoids)."""
    graph = {"t.low": {"t.pkg.contract"}, "t.pkg": {"t.pkg.high"}, "t.pkg.contract": set(), "t.pkg.high": set()}
    assert "t.pkg" in with_packages(graph)["t.low"]
    assert "t.pkg" not in with_packages(graph)["t.pkg.high"]  # its own package is already being imported


def test_no_import_cycle():
    graph = graph_of_project()
    assert graph["tmu_core.jobs.pipeline"] and graph["app"], "the import graph came out empty: the parser is broken"
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_every_module_has_a_layer():
    assert not [n for n in modules() if layer_of(n) is None]


def test_no_import_runs_up_a_layer():
    assert not upward_imports(graph_of_project())


def test_the_layer_check_sees_a_lazy_import_up_a_layer(tmp_path):
    """A function-level import counts: tmu_core.config importing the pipeline inside a function is refused."""
    path = tmp_path / "config.py"
    path.write_text("def f():\n    from .jobs import pipeline\n")
    graph = {"tmu_core.config": imports_of("tmu_core.config", path, {"tmu_core.jobs.pipeline"})}
    assert upward_imports(graph) == [
        "tmu_core.config (configs and the generic registry) imports tmu_core.jobs.pipeline (jobs)"
    ]


def test_config_imports_no_registry():
    mods = modules()
    deps = imports_of("tmu_core.config", mods["tmu_core.config"], set(mods))
    assert deps <= {"tmu_core.errors"}, deps


def statement_lines(fn: ast.AST) -> int:
    """Lines on which a statement of `fn` starts: its length as written, whatever the formatter does to the
    wrapping of one long call (ruff format puts each argument of a long call on a line of its own)."""
    return len({node.lineno for node in ast.walk(fn) if isinstance(node, ast.stmt)})


def test_no_function_in_tmu_core_is_over_60_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = statement_lines(node)
                if n > 60:
                    long.append(f"{name}.{node.name}: {n} statement lines")
    assert not long, long


def test_the_pipeline_names_no_method():
    from tmu_core.methods import METHODS

    text = (CORE / "jobs" / "pipeline.py").read_text()
    named = [m for m in METHODS.names() if f'"{m}"' in text or f"'{m}'" in text]
    assert not named, f"jobs/pipeline.py names methods {named}; their traits belong on the registry entry"


def test_only_the_store_spells_out_run_file_names():
    """File names of a run (metrics.json, samples.csv, ...) appear in the store's paths module and nowhere
    else in tmu_core, ui/ or pages/ (messages that merely name a file are allowed in the store itself)."""
    names = (
        "config.json",
        "status.json",
        "metrics.json",
        "samples.csv",
        "embeddings.npz",
        "results.json",
        "error.log",
        "run.log",
        "umap-",
    )
    offenders = []
    files = [p for p in CORE.rglob("*.py") if "store" not in p.parts]
    files += list((ROOT / "ui").glob("*.py")) + list((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                hits = [n for n in names if n in node.value and not node.value.startswith(("#", " ", "-"))]
                if hits and len(node.value) < 40:  # a file name used as a path, not a sentence that mentions it
                    offenders.append(f"{path.relative_to(ROOT)}: {node.value!r}")
    assert not offenders, offenders


def test_pages_and_ui_build_no_paths():
    """Pages and ui/ get data or version tokens from the store, never a path into it. (ui/nav.py locates the
    app's own page scripts and help texts, which are not part of the run store.)"""
    offenders = []
    ui_files = [p for p in (ROOT / "ui").glob("*.py") if p.name != "nav.py"]
    for path in ui_files + list((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]:
        text = path.read_text()
        for needle in ("from pathlib", "import pathlib", ".stat()", ' / "', "open("):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders


def test_the_stored_config_is_the_run_config_itself():
    """config.json is RunConfig's JSON form and reads back as the same config, every section set away from its
    defaults (own model, method settings, forget ids included); an older stored config still loads."""
    import json

    from tmu_core.config import (
        DataConfig,
        ForgetSpec,
        OwnModelConfig,
        RunConfig,
        TrainConfig,
        run_config_from_dict,
        run_config_to_dict,
    )

    cfg = RunConfig(
        data=DataConfig(dataset="imagefolder", data_root="x", image_size=16, train_per_class=5),
        forget=ForgetSpec(forget_class="#2", forget_ids=(4, 9)),
        train=TrainConfig(epochs=2, schedule="step", augment="flip"),
        methods=("tmu", "salun"),
        method_params=(("tmu", (("features", ("NF", "CF")), ("mechanism", "neggrad"))), ("salun", (("lr", 0.5),))),
        seed=7,
        device="cuda:1",
        name="n",
        gold_seeds=3,
        own=OwnModelConfig(original_weights="w.pt", gold_weights="g.pt", input_mean=(0.5,), input_std=(0.2,)),
    )
    stored = json.loads(json.dumps(run_config_to_dict(cfg)))
    assert set(stored) == set(RunConfig.model_fields)
    assert stored["method_params"] == {"tmu": {"features": ["NF", "CF"], "mechanism": "neggrad"}, "salun": {"lr": 0.5}}
    back = run_config_from_dict(stored)
    assert run_config_to_dict(back) == stored and back.own.gold == "weights"
    assert back.params_for("salun") == {"lr": 0.5}
    old = json.loads((CORE / "demo_bundle/runs/demo-digits-c8-n110-s0/config.json").read_text())
    again = run_config_to_dict(run_config_from_dict(old))  # settings added since read as their defaults
    assert all(again[k] == v if not isinstance(v, dict) else again[k] | v == again[k] for k, v in old.items())
    del old["own"], old["gold_seeds"]  # written before those settings existed: their defaults
    assert run_config_from_dict(old).gold_seeds == 1 and not run_config_from_dict(old).own.active


def method_name_literals(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, literal) wherever `source` spells one of `names` as a string literal (f-string parts included)."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]


def test_the_app_asks_the_registry_which_method_is_tmu():
    """ui/, pages/, app.py, jobs, evaluation and own-model code never spell TMU's name: metrics.json stores
    TMU's report under the primary method's name, which they get from `primary_method()`."""
    from tmu_core.methods import METHODS, primary_method

    assert METHODS.get(primary_method()).primary
    files = [
        *(ROOT / "ui").glob("*.py"),
        *(ROOT / "pages").glob("*.py"),
        ROOT / "app.py",
        *(CORE / "jobs").glob("*.py"),
        *(CORE / "evaluate").glob("*.py"),
        *(CORE / "ownmodel").glob("*.py"),
    ]
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path in files
        for line, value in method_name_literals(path.read_text(), {primary_method()})
    ]
    assert not offenders, offenders


def test_the_literal_finder_sees_a_method_name_in_an_f_string():
    source = "rows = {}\nok = 'tmu_seconds'\nx = f\"{rows['tmu']:.1f}\"\n"
    assert method_name_literals(source, {"tmu"}) == [(3, "tmu")]
