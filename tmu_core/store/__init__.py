"""The run store: the only package that knows where files go (`paths`), how they are written (`io`,
atomic), which runs exist (`runs`) and which sweeps (`sweeps`), and whether a run's process is alive (`process`).

Everything else reaches files through the accessors re-exported here.
"""

from . import uploads
from .io import (
    atomic_savez,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    csv_text,
    json_ready,
    json_text,
    load_arrays,
    load_state,
    read_json,
    safe_cell,
    save_state,
    write_csv,
)
from .paths import (
    AUDIT,
    UNLEARNED,
    compiled_code_dir,
    compiled_code_log,
    compiled_code_ready,
    data_cache_file,
    default_data_root,
    model_cache_file,
    model_meta_file,
    read_model_meta,
    runs_root,
    sweeps_root,
    upload_file,
)
from .process import pid_alive
from .runs import RUN_ID, STATES, Run, RunInfo, check_run_id, list_runs, model_lock, open_run
from .sweeps import Sweep, list_sweeps

__all__ = [
    "AUDIT",
    "UNLEARNED",
    "upload_file",
    "uploads",
    "atomic_savez",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "csv_text",
    "safe_cell",
    "write_csv",
    "json_ready",
    "json_text",
    "load_arrays",
    "load_state",
    "read_json",
    "save_state",
    "compiled_code_dir",
    "compiled_code_log",
    "compiled_code_ready",
    "data_cache_file",
    "default_data_root",
    "model_cache_file",
    "model_meta_file",
    "read_model_meta",
    "runs_root",
    "sweeps_root",
    "pid_alive",
    "RUN_ID",
    "STATES",
    "Run",
    "RunInfo",
    "Sweep",
    "check_run_id",
    "list_runs",
    "list_sweeps",
    "model_lock",
    "open_run",
]
