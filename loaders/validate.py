"""Turn one input line into a DynamoDB item, or into a reject that says why.

Every rule DynamoDB would enforce on a ``PutRequest`` is checked here, so a bad
line is rejected alone instead of failing the 24 good lines batched with it.
What we cannot foresee, DynamoDB still reports; the writer then isolates the
offending item (see :mod:`loaders.writer`).

Numbers are parsed as :class:`~decimal.Decimal` so their text reaches DynamoDB
unchanged (no float rounding). ``NaN`` and ``Infinity`` are not numbers there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cachewarm.model import RESTAURANT_PREFIX
from loaders.reader import TooLong

#: DynamoDB's item size limit (attribute names and values, UTF-8).
MAX_ITEM_BYTES = 400 * 1024
#: DynamoDB's limits on key attribute values.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_DEPTH = 32
MAX_NUMBER_DIGITS = 38
_SMALL_INT = 10**MAX_NUMBER_DIGITS
#: Key attributes of the table and its GSI, with their size limits. The table
#: defines all four as strings; GSI1's may be absent (a sparse index).
KEY_LIMITS = {"PK": MAX_PARTITION_KEY_BYTES, "SK": MAX_SORT_KEY_BYTES}
INDEX_KEY_LIMITS = {"GSI1PK": MAX_PARTITION_KEY_BYTES, "GSI1SK": MAX_SORT_KEY_BYTES}
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=lambda name: _no_constants(name))
#: The reject file keeps at most this much of a line's text.
MAX_REJECT_TEXT = MAX_ITEM_BYTES * 11


@dataclass(slots=True)
class Item:
    """A valid line: its number, its table key, the typed item, and the restaurant it touches."""

    line: int
    key: tuple[str, str]
    av: dict[str, Any]
    restaurant: str | None
    raw: bytes


@dataclass(frozen=True, slots=True)
class Reject:
    """A line that was not written: its number, why, and its original text."""

    line: int
    reason: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """The rejects-file record."""
        return {"line": self.line, "reason": self.reason, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reject:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["line"]), str(data["reason"]), str(data.get("text", "")))


class _Invalid(Exception):
    """A rule failed; the message is the reject's reason."""


def decode_text(raw: bytes) -> str:
    """A line's original text for a reject, even if it is not valid UTF-8."""
    text = raw[:MAX_REJECT_TEXT].decode("utf-8", errors="backslashreplace")
    return text if len(raw) <= MAX_REJECT_TEXT else text + "…"


def parse_line(raw: bytes | TooLong, line: int) -> Item | Reject:
    """Validate one line and convert it to a DynamoDB item (``{"attr": {"S": ...}}``)."""
    if isinstance(raw, TooLong):
        return Reject(line, f"line is {raw.length:,} bytes, longer than any DynamoDB item can be "
                            f"(items are at most {MAX_ITEM_BYTES:,} bytes); first bytes kept",
                      decode_text(raw.head) + "…")
    raw = raw.removesuffix(b"\r")
    if not raw.strip():
        return Reject(line, "blank line", decode_text(raw))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject(line, f"not valid UTF-8 (byte {exc.start + 1})", decode_text(raw))
    try:
        data = _DECODER.decode(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        return Reject(line, f"not valid JSON: {exc.msg} (column {exc.colno})", decode_text(raw))
    except _Invalid as exc:
        return Reject(line, str(exc), decode_text(raw))
    except RecursionError:
        return Reject(line, f"nested deeper than DynamoDB's {MAX_DEPTH} levels", decode_text(raw))
    except ValueError as exc:  # e.g. an integer literal of more than 4,300 digits
        return Reject(line, f"not valid JSON: {exc}", decode_text(raw))
    if not isinstance(data, dict):
        return Reject(line, f"expected a JSON object, got {_kind(data)}", decode_text(raw))
    try:
        key = _check_keys(data)
        # An item's DynamoDB size is at most twice its JSON text (each value costs at most two
        # bytes per character of its JSON); only long lines need the exact count.
        sized = len(raw) > MAX_ITEM_BYTES // 2
        # Lone surrogates can only come from \uXXXX escapes: check strings only when one is present.
        unicode_escapes = b"\\u" in raw
        av, size = _item(data, sized or unicode_escapes)
    except _Invalid as exc:
        return Reject(line, str(exc), decode_text(raw))
    if size > MAX_ITEM_BYTES:
        return Reject(line, f"item is {size:,} bytes, over DynamoDB's limit of {MAX_ITEM_BYTES:,} bytes (400 KB)",
                      decode_text(raw))
    gsi_pk = data.get("GSI1PK")
    restaurant = gsi_pk[len(RESTAURANT_PREFIX):] if isinstance(gsi_pk, str) and gsi_pk.startswith(
        RESTAURANT_PREFIX) else None
    return Item(line, key, av, restaurant or None, raw)


def _no_constants(name: str) -> Any:
    raise _Invalid(f"{name} is not a number DynamoDB can store")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _utf8_len(text: str) -> int:
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Invalid("a string holds a lone surrogate (\\ud800-\\udfff), which is not valid Unicode") from None


def _check_keys(data: dict[str, Any]) -> tuple[str, str]:
    for name, limit in KEY_LIMITS.items():
        if name not in data:
            raise _Invalid(f"missing key attribute {name}")
        _check_key_value(name, data[name], limit)
    for name, limit in INDEX_KEY_LIMITS.items():
        if name in data:
            _check_key_value(name, data[name], limit)
    return data["PK"], data["SK"]


def _check_key_value(name: str, value: Any, limit: int) -> None:
    if not isinstance(value, str):
        raise _Invalid(f"key attribute {name} must be a string, got {_kind(value)}")
    if value == "":
        raise _Invalid(f"key attribute {name} is empty")
    size = _utf8_len(value)
    if size > limit:
        raise _Invalid(f"key attribute {name} is {size:,} bytes; DynamoDB allows at most {limit:,}")


def _item(data: dict[str, Any], sized: bool) -> tuple[dict[str, Any], int]:
    """The typed item, and its size when ``sized`` (else 0: known to be small)."""
    av: dict[str, Any] = {}
    size = 0
    for name, value in data.items():
        if name == "":
            raise _Invalid("an attribute name is empty")
        kind = type(value)
        # Fast paths for the flat strings and small integers of the usual item.
        if kind is str and not sized:
            av[name] = {"S": value}
        elif kind is int and not sized and -_SMALL_INT < value < _SMALL_INT:
            av[name] = {"N": str(value)}
        else:
            converted, value_size = _value(value, name, 1)
            av[name] = converted
            size += _utf8_len(name) + value_size
    return av, (size if sized else 0)


def _value(value: Any, path: str, depth: int) -> tuple[dict[str, Any], int]:
    """DynamoDB's typed form of ``value`` and its size by DynamoDB's accounting."""
    kind = type(value)
    if kind is str:
        return {"S": value}, _utf8_len(value)
    if kind is bool:
        return {"BOOL": value}, 1
    if kind is int or kind is Decimal:
        text = _number(value, path)
        return {"N": text}, _number_size(text)
    if value is None:
        return {"NULL": True}, 1
    if depth > MAX_DEPTH:
        raise _Invalid(f"attribute {path!r} is nested deeper than DynamoDB's {MAX_DEPTH} levels")
    if kind is list:
        items = []
        size = 3
        for i, element in enumerate(value):
            converted, element_size = _value(element, f"{path}[{i}]", depth + 1)
            items.append(converted)
            size += element_size + 1
        return {"L": items}, size
    if kind is dict:
        members = {}
        size = 3
        for name, element in value.items():
            converted, element_size = _value(element, f"{path}.{name}", depth + 1)
            members[name] = converted
            size += _utf8_len(name) + element_size + 1
        return {"M": members}, size
    raise _Invalid(f"attribute {path!r} has an unsupported type {kind.__name__}")  # pragma: no cover


def _number(value: int | Decimal, path: str) -> str:
    # Counted from the digits, never through Decimal arithmetic (which rounds to 28 digits).
    if isinstance(value, int):  # never a bool here: _value sends those to BOOL
        if -_SMALL_INT < value < _SMALL_INT:
            return str(value)  # the common case: at most 38 digits, always in range
        text = str(abs(value))
        digits, exponent = len(text.rstrip("0")), len(text) - 1
    else:
        if value.is_zero():
            return str(value)
        digits = len("".join(map(str, value.as_tuple().digits)).strip("0"))
        exponent = value.adjusted()
    if digits > MAX_NUMBER_DIGITS:
        raise _Invalid(f"attribute {path!r} has {digits} significant digits; DynamoDB keeps at most "
                       f"{MAX_NUMBER_DIGITS}")
    if exponent > 125 or exponent < -130:
        raise _Invalid(f"attribute {path!r} is out of DynamoDB's number range (1E-130 to 9.9E+125)")
    return str(value)


def _number_size(text: str) -> int:
    # DynamoDB: about one byte per two significant digits, plus one.
    digits = sum(1 for ch in text if ch.isdigit())
    return (digits + 1) // 2 + 1
