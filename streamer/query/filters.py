"""Structured search filters to Milvus expressions that no value can change.

A filter maps a declared metadata field to a value or a list of values (any of them). Field
names must be among the topology's declared fields, or ``label:<classifier>`` for the label an
attached classifier gave (``true`` or ``false``; rows it never scored match neither); values
must be strings, integers, finite floats or booleans, and strings are escaped as literals.
milvus-lite has no expression templating, so this module is the only place expressions are
built from client input.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from streamer.core.errors import QueryError
from streamer.core.messages import LABELS_KEY
from streamer.trainer.classifier import NAME as CLASSIFIER_NAME

__all__ = ["LABEL_PREFIX", "MAX_FILTER_VALUES", "MAX_VALUE_CHARS", "build_filter", "literal"]

#: a filter on the label of an attached classifier: ``label:<classifier name>``
LABEL_PREFIX = "label:"
_TRUTHS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

MAX_FILTER_VALUES = 100
MAX_VALUE_CHARS = 512


def literal(value: Any) -> str:
    """A Milvus literal for one filter value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise QueryError(f"integer filter value out of range: {value}")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"filter value must be finite, got {value}")
        return repr(value)
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise QueryError(f"filter value longer than {MAX_VALUE_CHARS} characters")
        if any(ord(c) < 32 or c == "\x7f" for c in value):
            raise QueryError("filter values must not contain control characters")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise QueryError(
        f"filter values must be strings, numbers or booleans, got {type(value).__name__}"
    )


def build_filter(filters: Mapping[str, Any], allowed: Collection[str]) -> str:
    """``{"tenant": "acme", "lang": ["en", "fr"]}`` to a Milvus boolean expression."""
    clauses = []
    for field, value in sorted(filters.items()):
        if field.startswith(LABEL_PREFIX):
            clauses.append(_label_clause(field.removeprefix(LABEL_PREFIX), value))
            continue
        if field not in allowed:
            raise QueryError(
                f"cannot filter on {field!r}: the declared metadata fields are {sorted(allowed)} "
                f"(and {LABEL_PREFIX}<classifier> for an attached classifier's label)"
            )
        target = f'metadata["{field}"]'
        if isinstance(value, list | tuple):
            if not value:
                raise QueryError(f"filter on {field!r} has an empty list of values")
            if len(value) > MAX_FILTER_VALUES:
                raise QueryError(f"filter on {field!r} has more than {MAX_FILTER_VALUES} values")
            alternatives = " or ".join(f"{target} == {literal(v)}" for v in value)
            clauses.append(f"({alternatives})")
        else:
            clauses.append(f"{target} == {literal(value)}")
    return " and ".join(clauses)


def _label_clause(name: str, value: Any) -> str:
    """``label:<name>`` = true / false: the verdict an attached classifier wrote."""
    if not CLASSIFIER_NAME.fullmatch(name):
        raise QueryError(
            f"cannot filter on {LABEL_PREFIX}{name!r}: a classifier's name is lower-case "
            "letters, digits, '-' and '_', starting with a letter"
        )
    if isinstance(value, str) and value.strip().lower() in _TRUTHS:
        value = _TRUTHS[value.strip().lower()]
    if not isinstance(value, bool):
        raise QueryError(f"filter {LABEL_PREFIX}{name} takes true or false, got {value!r}")
    return f'metadata["{LABELS_KEY}"]["{name}"]["label"] == {literal(value)}'
