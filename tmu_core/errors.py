"""User-facing errors.

Every mistake a user can make (unknown names, bad forget specs, missing data, damaged files) raises
`TMUError` with one sentence that names what is valid. The CLI prints it on one line and exits 2; the
dashboard shows it with `st.error`. Anything else escaping is a bug.
"""


class TMUError(ValueError):
    """A problem with the user's input or files, explained in one line."""


class DataUnavailable(TMUError):
    """A dataset's files are absent and cannot be downloaded (offline)."""


class Cancelled(Exception):
    """Raised inside a pipeline when its run was asked to stop."""
