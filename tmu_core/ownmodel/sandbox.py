"""Executable model files (TorchScript, torch.export programs) are code: they run only where the user opted in
(`--allow-executable-model`; on the dashboard only where its operator set TMU_ALLOW_EXECUTABLE_MODELS=1), and
then only in a child process that limited itself before it read the file:

- no write access outside its folder (the run folder; a private temporary folder for the check before a run):
  Landlock on Linux, through its three system calls (`enter`). A kernel without Landlock is said in the run's
  notes, and the child then keeps the other limits and a private working folder;
- a memory limit (RLIMIT_AS, TMU_MODEL_MEMORY_GB, default the smaller of 16 GiB and 3/4 of the machine's
  memory; not on a GPU, where CUDA reserves address space) and a CPU-time limit (RLIMIT_CPU);
- a time limit on every call into the model (`call_limit`: a real-time timer whose default action ends the
  process, so a forward that never returns is stopped even inside the model's own code; TMU_MODEL_CALL_SECONDS,
  default 300).

The parent (the command line or the dashboard's server) never loads such a file: it checks what is not code
(data, forget list, the file's declared sizes), starts `python -m tmu_core _worker-sandbox check` to load and
check the model before a run folder exists, then `... _worker-sandbox execute RUN` for the whole run, and stops
the child (SIGTERM, then SIGKILL) when it is itself stopped. Reading files is not restricted.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ..errors import TMUError

ENV_ALLOW = "TMU_ALLOW_EXECUTABLE_MODELS"
ENV_CALL = "TMU_MODEL_CALL_SECONDS"
ENV_MEMORY = "TMU_MODEL_MEMORY_GB"
ENV_CPU = "TMU_MODEL_CPU_SECONDS"
NO_LANDLOCK = (
    "this kernel has no Landlock: the model's code ran in a child process with memory, CPU-time and per-call "
    "time limits and a private working folder, but writes outside the run folder could not be blocked"
)

# Landlock (linux/landlock.h): system call numbers (the same on every architecture) and filesystem rights.
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
PR_SET_NO_NEW_PRIVS = 38
RULE_PATH_BENEATH = 1
WRITE_FILE, REMOVE_DIR, REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
MAKE = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
REFER, TRUNCATE = 1 << 13, 1 << 14
NOTES: list[str] = []  # what `enter` could not limit in this process (the run's notes)


def operator_allows() -> bool:
    """Whether the person who started this process (the dashboard's server) allows executable model files."""
    return os.environ.get(ENV_ALLOW, "").strip().lower() in ("1", "true", "yes")


_entered = False  # set by `enter` in the process that limited itself: never read from the environment


def inside() -> bool:
    """Whether this process limited itself with `enter` (it, and what it forks, alone may read a model that is
    code). A flag of the process, not an environment variable: no setting of the server's makes it read code."""
    return _entered


def require_inside(what: str) -> None:
    """Refuse, in any process that did not limit itself, to run `what` (a load of a model that is code): the guard
    sits where the code would run, whatever called it."""
    if not _entered:
        raise RuntimeError(f"{what} runs only in a sandboxed child process (sandbox.enter); refused here")


def _number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        raise TMUError(f"{name} must be a number (got {os.environ.get(name)!r})") from None
    return value if value > 0 else default


def call_seconds() -> float:
    return _number(ENV_CALL, 300.0)


def memory_bytes() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(_number(ENV_MEMORY, min(16.0, 0.75 * total / 2**30)) * 2**30)


@contextlib.contextmanager
def call_limit():
    """Inside the sandbox: the process ends (SIGALRM, default action) if the block runs longer than the call limit;
    elsewhere (a model that is not code) nothing."""
    if not inside():
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, call_seconds())
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 where it has none (or this is not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(abi))


def restrict_writes(writable: list[Path], devices=()) -> bool:
    """Landlock: from now on this process and its children create, write, truncate, rename or remove files only
    beneath `writable` (and write /dev/null and `devices`, a GPU's). False where the kernel has no Landlock."""
    abi = landlock_abi()
    if abi < 1:
        return False
    handled = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0)
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    attr = _RulesetAttr(handled)
    fd = libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        file_rights = WRITE_FILE | (TRUNCATE if abi >= 3 else 0)
        rules = [*((p, handled) for p in writable), *((d, file_rights) for d in [Path("/dev/null"), *devices])]
        for path, rights in rules:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(rights, pfd)
                if libc.syscall(ctypes.c_long(SYS_ADD_RULE), fd, RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(pfd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(ctypes.c_long(SYS_RESTRICT_SELF), fd, 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(fd)
    return True


def enter(folder: Path, cpu_seconds: float, gpu: bool = False) -> list[str]:
    """Limit this process before it reads a model that is code (see the module's docstring); returns (and keeps
    in NOTES) what could not be limited. Temporary files go to `folder`, the one folder it may write."""
    global _entered
    notes = []
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    cpu = int(_number(ENV_CPU, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    if gpu:
        notes.append("no memory limit on the model's code: CUDA reserves more address space than any limit allows")
    else:
        limit = memory_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    devices = sorted(Path("/dev").glob("nvidia*")) if gpu else []
    if not restrict_writes([folder], devices):
        notes.append(NO_LANDLOCK)
    NOTES[:] = notes
    _entered = True  # only now, with every limit in place
    return notes


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to the child's process group, then SIGKILL: a model stuck in its own code ignores the first."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _death(rc: int, what: str) -> str:
    if rc == -signal.SIGALRM:
        return f"{what} did not return within {call_seconds():g} s (TMU_MODEL_CALL_SECONDS): stopped"
    if rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"{what} ran past its CPU-time or memory limit and was stopped"
    return f"{what} ended unexpectedly (exit {rc})"


def run_child(args: list[str], what: str, stdin: str = "", timeout: float | None = None, echo=None) -> str:
    """`python -m tmu_core _worker-sandbox ARGS` to its end; returns its stdout. Its stderr's progress lines go to
    `echo`; an error line (or a death by a limit) becomes a TMUError; a stop signal here stops it too."""
    from .. import store

    env = dict(
        os.environ,
        TMU_RUNS_DIR=str(store.runs_root().resolve()),
        TMU_DATA_DIR=str(store.default_data_root("").resolve()),
        PYTHONWARNINGS="ignore",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmu_core", "_worker-sandbox", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        process_group=0,
    )
    timer = threading.Timer(timeout, _stop, [proc]) if timeout else None
    last = ""
    try:
        if timer:
            timer.start()
        proc.stdin.write(stdin)
        proc.stdin.close()
        for line in proc.stderr:
            line = line.rstrip("\n")
            if line.startswith("[") and echo:
                echo(line)
            elif line.strip() and not line.startswith("["):
                last = line
        out = proc.stdout.read()
        proc.wait()
    except BaseException:  # Ctrl-C, a stop signal: the child goes too
        _stop(proc)
        raise
    finally:
        if timer:
            timer.cancel()
    if proc.returncode == 0:
        return out
    if proc.returncode == 2 and last.startswith("error: "):
        raise TMUError(last[len("error: ") :])
    if proc.returncode < 0:
        raise TMUError(_death(proc.returncode, what))
    raise TMUError(
        f"{what}: {last.removeprefix('error: ') or f'the sandboxed child ended with exit {proc.returncode}'}"
    )


def check_in_child(cfg_dict: dict) -> dict:
    """Load and check an executable model as `validate` does, in a sandboxed child with a private folder;
    returns what the check found (accuracies, notes)."""
    with tempfile.TemporaryDirectory(prefix="tmu-check-") as folder:
        out = run_child(
            ["check", folder],
            "your model's code (checked in a sandboxed child process)",
            stdin=json.dumps(cfg_dict),
            timeout=3 * call_seconds() + 300,
        )
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise TMUError("the sandboxed check of your model gave no result") from None


def wants_child(run) -> bool:
    """Whether `run` (a stored run) loads a model that is code and this process is not its sandboxed child."""
    from .files import EXECUTABLE, sniff

    if inside():
        return False
    own = run.config().get("own") or {}
    if not own.get("allow_executable_model"):
        return False  # refused in one line where it is loaded
    paths = [Path(p).expanduser() for p in (own.get("original_weights"), own.get("gold_weights")) if p]
    return any(p.is_file() and sniff(p) in EXECUTABLE for p in paths)


def execute_in_child(run, progress=None) -> dict:
    """Execute `run` in a sandboxed child whose one writable folder is the run's; returns its result (metrics)."""
    from ..config import run_config_from_dict
    from .layout import load_user_data

    cfg = run_config_from_dict(run.config())
    load_user_data(cfg.data, cfg.own)  # the image cache is written here: the child writes only its run folder
    echo = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else None
    try:
        run_child(["execute", run.id, *(["--progress"] if progress else [])], "your model's code", echo=echo)
    except BaseException as exc:
        if run.status().get("state") in ("running", "queued"):  # the child was stopped before it could say so
            stopped = isinstance(exc, KeyboardInterrupt)
            run.set_status(
                state="interrupted" if stopped else "failed",
                error="interrupted (a stop signal); execute it again to finish" if stopped else str(exc),
            )
        raise
    return run.metrics()
