"""JSON from untrusted sources (config and settings files, worker requests, package manifests), bounded.

``json.loads`` alone accepts what later crashes or stalls us: ``NaN`` and ``Infinity`` (then "not JSON
compliant" when written back), 1e400 (becomes inf), integers of thousands of digits (Python's int limit,
or a slow conversion), nesting deep enough for a ``RecursionError``, duplicate keys (the last one silently
wins), unpaired surrogates (cannot be written as UTF-8 or used as a path), and invalid UTF-8.
``parse_json`` refuses all of them with a ``JSONRejected`` (a ``ValueError``) that says what, so each
caller turns it into its own error class and exit code.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; every format of ours needs at most 4."""
MAX_INT_DIGITS = 19
"""Longest integer literal accepted (a signed 64-bit integer has 19 digits)."""


class JSONRejected(ValueError):
    """The text is not JSON, or JSON outside the bounds above."""


def _refuse_constant(name: str) -> Any:
    raise JSONRejected(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRejected(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONRejected(f"integer of {len(text)} digits is out of range")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONRejected(f"key {key[:60]!r} appears twice in one object")
        result[key] = value
    return result


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONRejected(f"string {text[:40]!r} holds an unpaired surrogate (\\ud800-\\udfff)") from None


def _check_tree(value: Any, max_depth: int) -> None:
    """Depth and string check; walks without recursion, so the check itself cannot overflow the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise JSONRejected(f"nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                children = item.values()
            else:
                children = item
            stack.extend((child, depth + 1) for child in children)


def parse_json(data: str | bytes, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text or UTF-8 bytes of at most ``max_bytes``, refusing everything the module doc lists."""
    if len(data) > max_bytes:
        raise JSONRejected(f"{len(data)} bytes is more than the {max_bytes} allowed")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRejected(f"not UTF-8 text (byte {exc.start})") from None
    # Cheap bound before parsing: the C parser recurses once per bracket.
    if data.count("[") + data.count("{") > max_depth and _deeper_than(data, max_depth):
        raise JSONRejected(f"nested more than {max_depth} levels deep")
    try:
        value = json.loads(
            data,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except JSONRejected:
        raise
    except RecursionError:
        raise JSONRejected(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # JSONDecodeError included
        raise JSONRejected(str(exc)) from None
    _check_tree(value, max_depth)
    return value


def _deeper_than(text: str, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than ``max_depth`` (a linear scan, no parsing)."""
    depth = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


def json_kind(value: Any) -> str:
    """A JSON value's kind in words (``an array``), for messages about a value of the wrong shape."""
    if value is None:
        return "null"
    for types, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "an array")):
        if isinstance(value, types):
            return name
    return "an object" if isinstance(value, dict) else type(value).__name__


def short_repr(value: Any, limit: int = 60) -> str:
    """A bounded repr for messages: a 5,000-character string or 5,000-digit integer must not flood them (and
    ``repr`` of such an integer raises)."""
    if isinstance(value, str) and len(value) > limit:
        return f"a text of {len(value)} characters"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "an integer of more than 30 digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json_file(path: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Read and parse a JSON file of at most ``max_bytes``; ``OSError`` when it cannot be read."""
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    return parse_json(data, max_bytes, max_depth)
