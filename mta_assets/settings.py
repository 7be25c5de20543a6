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


LAST_WEEK_ENV_VAR = "MTA_LAST_WEEK"


def last_week_from_env() -> str | None:
    """The source's last week (``MTA_LAST_WEEK``, a Saturday key ``YYYY-MM-DD``), or None when unset.

    Weekly partitions end with this week, so no later week is listed, requested, late or
    missing. MTA's archive has no announced last file: declaring it is the operator's call.
    """
    import datetime as dt

    from mta_assets.mta.calendar import FIRST_WEEK, KEY_FORMAT

    raw = os.environ.get(LAST_WEEK_ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        day = dt.datetime.strptime(raw, KEY_FORMAT).date()
    except ValueError:
        raise ValueError(
            f"{LAST_WEEK_ENV_VAR}={raw!r} is not a date: use the Saturday a week begins, YYYY-MM-DD "
            "(e.g. 2024-02-10, the week of turnstile_240217.txt)"
        ) from None
    if day.weekday() != 5:
        saturday = day - dt.timedelta(days=(day.weekday() - 5) % 7)
        raise ValueError(
            f"{LAST_WEEK_ENV_VAR}={raw} is a {day:%A}; weeks are keyed by the Saturday they begin "
            f"(the week holding {raw} is {saturday:{KEY_FORMAT}})"
        )
    key = day.strftime(KEY_FORMAT)
    if key < FIRST_WEEK:
        raise ValueError(f"{LAST_WEEK_ENV_VAR}={key} is before the first week, {FIRST_WEEK}")
    return key
