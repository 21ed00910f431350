"""Session state the pages share: the selected run and the draft forget set.

Widget keys are prefixed per page (fs_, run_, audit_, ...) and Streamlit drops a widget's key when its
page is not shown, so what must survive a page change lives in two plain keys: `run_id` and `draft`.
Every accessor sets its default with `session_state.setdefault`, so each page also runs on its own.
"""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from tmu_core import runs
from tmu_core.config import DataConfig, ForgetSpec, RunConfig
from tmu_core.errors import TMUError
from tmu_core.recipes import default_train_config

RUN = "run_id"
DRAFT = "draft"
MODES = ("count", "fraction", "hand-pick")


def default_draft() -> dict:
    """The digits demo: class 8, 100 samples (about 80% of the class, so gold misses some of them)."""
    return {"dataset": "digits", "model": default_train_config("digits").model, "seed": 0, "forget_class": 8,
            "mode": "count", "count": 100, "fraction": 0.5, "ids": []}


def draft() -> dict:
    return st.session_state.setdefault(DRAFT, default_draft())


def bind(key: str, field: str, valid=None) -> None:
    """Seed a widget's key from the draft (once per visit of its page); `valid` resets a stale value."""
    d = draft()
    if key not in st.session_state or (valid is not None and st.session_state[key] not in valid):
        value = d[field]
        st.session_state[key] = value if valid is None or value in valid else list(valid)[0]


def forget_spec(d: dict) -> ForgetSpec:
    """The draft's forget set as a ForgetSpec (TMUError when invalid)."""
    if d["mode"] == "hand-pick":
        return ForgetSpec(forget_class=str(d["forget_class"]), forget_ids=tuple(d["ids"]))
    if d["mode"] == "fraction":
        return ForgetSpec(forget_class=str(d["forget_class"]), forget_fraction=float(d["fraction"]))
    return ForgetSpec(forget_class=str(d["forget_class"]), forget_count=int(d["count"]))


def train_config(d: dict, overrides: dict | None = None):
    return replace(default_train_config(d["dataset"]), model=d["model"], **(overrides or {}))


def run_config(d: dict, train_overrides: dict | None = None, methods=None, method_params: dict | None = None,
               name: str = "") -> RunConfig:
    """A RunConfig from the draft and the Run page's settings (validated by the dataclasses)."""
    if d["mode"] == "hand-pick" and not d["ids"]:
        raise TMUError("no samples picked: select images in the Forget set page's gallery, or choose by count")
    kw = {} if methods is None else {"methods": tuple(methods)}
    return RunConfig(data=DataConfig(dataset=d["dataset"]), forget=forget_spec(d), train=train_config(d, train_overrides),
                     method_params=tuple((m, tuple(sorted(p.items()))) for m, p in (method_params or {}).items() if p),
                     seed=int(d["seed"]), name=name.strip(), **kw)


def select_run(run_id: str | None) -> None:
    st.session_state[RUN] = run_id


def selected_run_id() -> str | None:
    """The selected run; by default (and when it has vanished) the newest complete run."""
    infos = runs.list_runs()
    current = st.session_state.get(RUN)
    if current not in {r.run_id for r in infos}:
        current = next((r.run_id for r in infos if r.state == "complete"), None)
        st.session_state[RUN] = current
    return current


def require_complete_run() -> runs.Run:
    """The selected run when it is complete; otherwise say why, link to the Run page and stop the page."""
    from ui import nav

    run_id = selected_run_id()
    if run_id is None:
        st.info("No finished run yet. Launch one on the Run page (the digits demo gives results in about a minute).")
        nav.link("run", "Go to the Run page")
        st.stop()
    info = {r.run_id: r for r in runs.list_runs()}.get(run_id)  # list_runs reads 'damaged' for broken files
    if info is None:
        st.stop()  # deleted since the line above: the next rerun picks another
    if info.state != "complete":
        msg = f"Run `{run_id}` is {info.state}"
        if info.state in ("queued", "running"):
            st.info(f"{msg} ({100 * info.progress:.0f}%, {info.stage}); its results appear here when it finishes.")
        else:
            st.warning(f"{msg}: {info.error or 'no results'}. Choose another run on the Run page.")
        nav.link("run", "Go to the Run page")
        st.stop()
    return runs.open_run(run_id)


def require_tmu_results(missing: str):
    """(run, metrics, samples) of the selected complete run when it includes TMU; otherwise say so and stop."""
    from ui import cache

    run = require_complete_run()
    metrics = cache.metrics(cache.root(), run.id)
    if "tmu" not in metrics:
        st.info(f"Run `{run.id}` did not include TMU, so {missing}.")
        st.stop()
    return run, metrics, cache.samples(cache.root(), run.id)
