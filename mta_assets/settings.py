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


# --- ridership and warehouse (issue 14) ---------------------------------------------------------


def ridership_settings() -> dict[str, str | None]:
    """The ridership and warehouse settings given in the environment (unset ones are None).

    ``MTA_WAREHOUSE``: the DuckDB file; ``MTA_STATION_KEY_PATH``: a local copy of MTA's
    Remote-Booth-Station key (checked here: it must be a readable file);
    ``MTA_STATION_KEY_URL``: where to fetch the key when no path is given.
    """
    values = {
        name: (os.environ.get(name, "").strip() or None)
        for name in ("MTA_WAREHOUSE", "MTA_STATION_KEY_PATH", "MTA_STATION_KEY_URL")
    }
    key_path = values["MTA_STATION_KEY_PATH"]
    if key_path and not os.path.isfile(os.path.expanduser(key_path)):
        raise ValueError(f"MTA_STATION_KEY_PATH={key_path!r} is not a file (MTA's Remote-Booth-Station key, CSV or xls)")
    url = values["MTA_STATION_KEY_URL"]
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"MTA_STATION_KEY_URL={url!r} is not an http(s) URL")
    return values
