"""What a setting may be, in words, and a ``ValidationError`` as one line per bad variable.

Each line names the variable and its allowed values; a secret's value is never shown.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path

import annotated_types
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

_WORDS = {
    bool: "true or false (1/0, yes/no, on/off)",
    int: "a whole number",
    float: "a number",
    Path: "a path",
    SecretStr: "text (secret)",
    str: "text",
}
_OUT_OF_BOUNDS = {"greater_than_equal", "greater_than", "less_than_equal", "less_than", "finite_number"}
_NOT_PARSED = {"int_parsing", "int_from_float", "int_type", "float_parsing", "float_type", "bool_parsing", "bool_type"}


def base_type(info: FieldInfo) -> type:
    """The field's type without ``| None``."""
    args = [arg for arg in typing.get_args(info.annotation) if arg is not type(None)]
    return args[0] if args else info.annotation  # type: ignore[return-value]


def is_secret(info: FieldInfo) -> bool:
    return base_type(info) is SecretStr


def _extra(info: FieldInfo) -> dict:
    return info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}


def bounds(info: FieldInfo) -> str | None:
    """``0..23``, ``>= 1024`` or None, from the field's ``ge``/``le`` (``gt``/``lt``)."""
    low = high = None
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"{item.ge}"
        elif isinstance(item, annotated_types.Gt):
            low = f"> {item.gt}"
        elif isinstance(item, annotated_types.Le):
            high = f"{item.le}"
        elif isinstance(item, annotated_types.Lt):
            high = f"< {item.lt}"
    if low is not None and high is not None:
        return f"{low}..{high}"
    if low is not None:
        return low if low.startswith(">") else f">= {low}"
    if high is not None:
        return high if high.startswith("<") else f"<= {high}"
    return None


def allowed(info: FieldInfo) -> str:
    """The values a setting may take, in words: ``a whole number, 0..23``, ``http(s) URL``."""
    if "allowed" in _extra(info):
        return str(_extra(info)["allowed"])
    words = _WORDS.get(base_type(info), "text")
    limits = bounds(info)
    return f"{words}, {limits}" if limits else words


def problem(name: str, info: FieldInfo | None, error: ErrorDetails) -> str:
    """One line for one bad value, naming the variable ``name``."""
    kind = error["type"]
    if kind == "value_error":  # our own checks (checks.py) name the variable already
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if info is None:
        return f"{name}: {error['msg']}"
    raw = error.get("input")
    shown = " (value not shown: it is secret)" if is_secret(info) else f"={raw!r}"
    hint = f"; {_extra(info)['hint']}" if "hint" in _extra(info) else ""
    if kind in _OUT_OF_BOUNDS and not is_secret(info):
        return f"{name}={raw} is outside {bounds(info)}{hint}"
    if kind in _NOT_PARSED:
        words = _WORDS.get(base_type(info), "valid")
        if base_type(info) is bool:
            return f"{name}{shown} must be {words}"
        return f"{name}{shown} is not {words} (allowed: {bounds(info) or allowed(info)})"
    return f"{name}{shown}: {error['msg']} (allowed: {allowed(info)})"


def problems(exc: ValidationError, fields: dict[str, FieldInfo], name_of: Callable[[str], str]) -> str:
    """Every bad value of ``exc`` on its own line, each once."""
    lines = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        lines.append(problem(name_of(field), fields.get(field), error))
    return "\n".join(dict.fromkeys(lines))
