"""Conversions shared by the store's query modules: domain values and text into storable form.

Also the decorator that maps SQLAlchemy errors to ``StoreError`` at the store's boundary.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from evoforge.errors import BadInputError, StoreError

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=StrEnum)

#: stage logs are kept as head + tail, at most this many characters (plus the cut marker).
LOG_EXCERPT_CHARS = 20_000
DB_HINT = "check the --db URL / EVOFORGE_DB, and that no other process holds a long transaction"


def db_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Map SQLAlchemy errors to ``StoreError`` (the session must then be rolled back)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SQLAlchemyError as exc:
            raise StoreError(f"{fn.__name__} failed: {exc}", hint=DB_HINT) from exc

    return wrapper


def choice(enum: type[E], value: str, what: str) -> E:
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(m.value for m in enum)
        raise BadInputError(f"unknown {what} {value!r}", hint=f"use one of: {valid}") from None


def clean_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters; tool logs sometimes do."""
    return text.replace("\x00", "\\x00")


def excerpt(text: str, limit: int = LOG_EXCERPT_CHARS) -> str:
    """``text`` when short, else its head and tail around a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return f"{text[:head]}\n… [{len(text) - limit} characters cut] …\n{text[-tail:]}"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: tuples → lists, non-finite floats → None, other objects → str."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)
