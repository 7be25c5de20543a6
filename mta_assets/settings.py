"""Plain settings read from the environment when the code location loads (cheap, no I/O)."""

import os


def int_from_env(name: str, default: int, lowest: int, highest: int | None = None, why: str = "") -> int:
    """An integer setting; a value that is not a whole number or out of range names the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < lowest or (highest is not None and value > highest):
        bounds = f"{lowest}..{highest}" if highest is not None else f">= {lowest}"
        raise ValueError(f"{name}={value} is outside {bounds}{'; ' + why if why else ''}")
    return value


def weeks_per_run() -> int:
    """How many weeks one backfill run takes (``MTA_WEEKS_PER_RUN``); 0, the default, means a whole range in one run."""
    return int_from_env(
        "MTA_WEEKS_PER_RUN",
        0,
        0,
        why="0 (or unset) runs a whole range in one run, N splits a backfill into runs of N weeks",
    )
