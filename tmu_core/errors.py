"""User-facing errors.

Every mistake a user can make (unknown names, bad forget specs, missing data, damaged files) raises
`TMUError` with one sentence that names what is valid. The CLI prints it on one line and exits 2; the
dashboard shows it with `st.error`. Anything else escaping is a bug.
"""

import unicodedata


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters written as escapes (\\n, \\x1b, ...): a file name
    holding a newline cannot split a message in two, nor print a line of its own."""
    return "".join(repr(ch)[1:-1] if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


MAX_MESSAGE = 2000  # characters: a message quoting a user's text is cut (its source should quote less)


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` with its middle cut when longer than `limit`, the cut said."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ... ({len(text) - 2 * half} characters cut) ... {text[-half:]}"


class TMUError(ValueError):
    """A problem with the user's input or files, explained in one line (control characters escaped) of at most
    about MAX_MESSAGE characters."""

    def __str__(self) -> str:
        return bounded(one_line(super().__str__()))


class DataUnavailable(TMUError):
    """A dataset's files are absent and cannot be downloaded (offline)."""


class Diverged(TMUError):
    """A loss became NaN or infinite: the recipe (learning rate, momentum) is too aggressive for this model."""


def check_finite(loss, stage: str, epoch: int) -> None:
    """Raise Diverged naming `stage` when the (scalar tensor) loss is not finite."""
    value = float(loss.detach())
    if value != value or value in (float("inf"), float("-inf")):
        raise Diverged(
            f"{stage} diverged: its loss became {value} in epoch {epoch + 1}; lower the learning rate or the momentum"
        )


class Cancelled(Exception):
    """Raised inside a pipeline when its run was asked to stop."""
