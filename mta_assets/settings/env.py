"""One variable read on its own, with the model's rules and messages (for callers that bind a
resource field by field, such as the alert destinations).

New code reads ``load()`` (the whole model) instead; these exist so that a caller can check
one variable given in another mapping than ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from mta_assets.settings.checks import SettingError
from mta_assets.settings.errors import problems


def env_text(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """A text setting; unset or blank means ``default``."""
    return (os.environ if environ is None else environ).get(name, "").strip() or default


def _parse(name: str, raw: str, kind: type, **constraints: Any) -> Any:
    annotated = Annotated[kind, Field(**constraints)]
    try:
        return TypeAdapter(annotated).validate_python(raw)
    except ValidationError as exc:
        raise SettingError(problems(exc, {"": FieldInfo.from_annotation(annotated)}, lambda _: name)) from None


def int_from_env(
    name: str,
    default: int,
    lowest: int,
    highest: int | None = None,
    why: str = "",
    environ: Mapping[str, str] | None = None,
) -> int:
    """A whole-number setting within ``lowest..highest``; a bad value names the variable."""
    raw = env_text(name, environ=environ)
    if raw is None:
        return default
    return _parse(name, raw, int, ge=lowest, le=highest, json_schema_extra={"hint": why} if why else None)


def float_from_env(
    name: str, default: float, lowest: float, highest: float | None = None, environ: Mapping[str, str] | None = None
) -> float:
    """A number setting (seconds, bytes per second), finite and within ``lowest..highest``."""
    raw = env_text(name, environ=environ)
    if raw is None:
        return default
    return _parse(name, raw, float, ge=lowest, le=highest, allow_inf_nan=False)


def bool_from_env(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """A true/false setting (1/0, yes/no, on/off); unset or blank means ``default``."""
    raw = env_text(name, environ=environ)
    return default if raw is None else _parse(name, raw, bool)
