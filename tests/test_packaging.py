"""The project as a package: every third-party import is declared, the pinned files agree, and a wheel installed
into a fresh environment (not the checkout) runs `tmu demo` from any folder, its bundled run read as package
data."""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"tmu_core", "ui", "pages", "app"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _norm(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0])


def declared() -> set[str]:
    """The distributions pyproject.toml names: dependencies and every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    return {_requirement_name(s) for s in specs}


def third_party_imports() -> dict[str, set[str]]:
    """{top-level module: files} imported by the code, the benchmarks and the tests (stdlib and our own left out)."""
    files = [
        *ROOT.glob("tmu_core/**/*.py"),
        *ROOT.glob("ui/*.py"),
        *ROOT.glob("pages/*.py"),
        ROOT / "app.py",
        *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("tests/*.py"),
    ]
    ours = FIRST_PARTY | {p.stem for p in files if p.parent.name in ("tests", "benchmarks")}
    out: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - ours - set(sys.stdlib_module_names):
                out.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return out


@pytest.mark.fast
def test_every_imported_package_is_declared():
    dists = md.packages_distributions()
    names = declared()
    undeclared = {
        module: sorted(files)[:3]
        for module, files in third_party_imports().items()
        if not {_norm(d) for d in dists.get(module, [module])} & names
    }
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


@pytest.mark.fast
def test_the_constraints_pin_every_requirement_at_its_version_and_torch_stays():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned"
            pins[_norm(name)] = version
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert pins.get(_norm(name)) == version, f"{line} disagrees with constraints.txt"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert "tmu-dashboard" not in pins  # the project itself is installed from the checkout


def test_an_installed_wheel_runs_the_bundled_demo_from_anywhere(tmp_path):
    """`pip install .` (a wheel, not editable) into a fresh environment, then `tmu demo` from a folder outside the
    checkout. The environment gets the shared venv's packages through a .pth line (the .pth files inside that
    folder are not read, so the checkout's editable hook stays out) and no PYTHONPATH."""
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ and *.egg-info behind
    shutil.copytree(ROOT / "tmu_core", src / "tmu_core", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, src], check=True, env=env)
    (wheel,) = wheels.glob("tmu_dashboard-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, env=env)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    (Path(purelib) / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], check=True, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-I", "-c", "import tmu_core; print(tmu_core.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    out = subprocess.run(
        [venv / "bin" / "tmu", "demo"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "TMU_RUNS_DIR": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "run demo-digits-c8-n110-s0" in out.stdout and "verdict:" in out.stdout, out.stdout
    assert (tmp_path / "runs" / "demo-digits-c8-n110-s0" / "metrics.json").is_file()


@pytest.mark.fast
def test_the_code_names_no_issue_numbers_and_no_machine_paths():
    """Comments speak of the project itself (no tracker numbers), and defaults are relative paths or flags."""
    patterns = [r"\bissues?\s+#?\d+", r"\b(?:issue|round)\s*#\d+", "/" + r"work/", "/" + r"home/\w", "/" + "Users/"]
    files = [
        *ROOT.glob("tmu_core/**/*.py"),
        *ROOT.glob("ui/*.py"),
        *ROOT.glob("pages/*.py"),
        ROOT / "app.py",
        *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("tests/*.py"),
        ROOT / "Makefile",
        ROOT / "pyproject.toml",
    ]
    found = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()[:80]}"
        for path in files
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if any(re.search(p, line, re.IGNORECASE) for p in patterns)
    ]
    assert not found, found
