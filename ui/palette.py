"""The dashboard's colours, defined once: green means easy, red means hard, everywhere, and nothing else is red.

A chosen thing (a selected widget option, the D_f images framed in a gallery) takes CHOSEN, which is also the
theme's primary colour (.streamlit/config.toml, checked by a test), so a chip or a frame never reads as "hard".
"""

EASY = "#2e7d32"  # green: gold (or the original, for D_a) still classifies the sample right
HARD = "#c62828"  # red: it does not
CHOSEN = "#3949ab"  # indigo: selected, picked, part of D_f
EASY_LIGHT, HARD_LIGHT = "#81c784", "#e57373"  # the same two, lighter: the twin's D_a beside D_f on a map


def rgb(color: str) -> tuple[int, int, int]:
    """'#3949ab' -> (57, 73, 171)."""
    h = color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
