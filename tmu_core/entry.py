"""What every process started from the command line shares: `tmu` itself and its hidden background workers.

`run_entry` sets up logging, makes a stop signal (SIGTERM) end the work like Ctrl-C (a run's status then says
interrupted, and `tmu execute` can finish it later), and maps errors to exit codes with one line on stderr:
0 done, 1 a bug ("unexpected ...", never a traceback), 2 a user error (TMUError), 130 interrupted,
141 the reader of stdout left (`tmu runs | head -1`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable

from .errors import TMUError, one_line

log = logging.getLogger(__name__)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (torch's pickle-protocol note, Pillow's DecompressionBombWarning, a complex-to-real
    cast) as one line of the log at debug level: what the user reads stays one line per error."""
    text = one_line(str(message))
    log.debug("%s (%s:%s): %s", category.__name__, os.path.basename(filename), lineno, text[:500])


def run_entry(body: Callable[[], int], level: int = logging.WARNING) -> int:
    """Run `body` as a process's main work and return its exit code (see the module's docstring)."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    warnings.showwarning = _log_warning
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return body()
    except BrokenPipeError:  # the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except TMUError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, never a traceback for the user
        log.debug("unexpected error", exc_info=True)
        print(f"error: unexpected {exc.__class__.__name__}: {exc} (please report this)", file=sys.stderr)
        return 1
