"""Reading typed values out of a RawInventory while collecting problems (the model's validators share it).

Every text check is a full match; a value holding a control character (a trailing newline included) is
refused with its file:line; a secret's value is never echoed in a message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from kubeha.errors import Location, Problem
from kubeha.inventory import RawInventory, Value
from kubeha.inventory.raw import SECRET_KEYS


class Checker:
    """Collects problems while reading typed values out of a RawInventory."""

    def __init__(self, raw: RawInventory) -> None:
        self.raw = raw
        self.problems: list[Problem] = list(raw.problems)

    def error(self, loc: Location, path: str, message: str) -> None:
        """Record an error."""
        self.problems.append(Problem(loc, path, message))

    def warn(self, loc: Location, path: str, message: str) -> None:
        """Record a warning."""
        self.problems.append(Problem(loc, path, message, "warning"))

    def clean(self, val: Value, path: str) -> bool:
        """False (with an error) when a text value holds a control character, a trailing newline included."""
        text = val.value if isinstance(val.value, str) else ""
        bad = next((ch for ch in text if _is_control(ch)), None)
        if bad is None:
            return True
        self.error(val.location, val.where or path, f"contains the control character U+{ord(bad):04X}"
                   + ("" if _is_secret(path) else f" ({show(val.value)})"))
        return False

    def typed(self, val: Value | None, path: str, conv: Callable[[Any], Any], what: str) -> Any:
        """``conv(value)``, or None with an error saying the value is not ``what``."""
        if val is None or not self.clean(val, path):
            return None
        try:
            return conv(val.value)
        except (ValueError, TypeError):
            self.error(val.location, val.where or path, f"{show(val.value, path)} is not {what}")
            return None

    def integer(self, val: Value | None, path: str, lo: int, hi: int) -> int | None:
        """An integer in ``lo..hi`` (digit strings count), or None with an error."""
        num = self.typed(val, path, as_int, "an integer")
        if num is not None and not lo <= num <= hi:
            assert val is not None
            self.error(val.location, val.where or path, f"{num} is out of range {lo}-{hi}")
            return None
        return num  # type: ignore[no-any-return]

    def matching(self, val: Value | None, path: str, pattern: re.Pattern[str], what: str) -> str | None:
        """Text that ``pattern`` matches in full, or None with an error."""
        if val is None or not self.clean(val, path):
            return None
        text = val.value if isinstance(val.value, str) else None
        if text is None or not pattern.fullmatch(text):
            self.error(val.location, val.where or path, f"{show(val.value, path)} is not {what}")
            return None
        return text

    def choice(self, val: Value | None, path: str, choices: tuple[str, ...]) -> str | None:
        """One of ``choices``, or None with an error."""
        if val is None or not self.clean(val, path):
            return None
        if val.value not in choices:
            self.error(val.location, val.where or path, f"{show(val.value)} is not one of {', '.join(choices)}")
            return None
        return str(val.value)


def as_int(value: Any) -> int:
    """An int from an int or a digit string (never from a bool)."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value)
    raise ValueError


def as_ipv4(value: Any) -> ipaddress.IPv4Interface:
    """An IPv4 address, with an optional /prefix, from text without surrounding spaces."""
    if not isinstance(value, str):
        raise TypeError
    iface = ipaddress.ip_interface(value.strip())
    if not isinstance(iface, ipaddress.IPv4Interface) or value.strip() != value:
        raise ValueError
    return iface


def _is_control(ch: str) -> bool:
    return ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029"


def _is_secret(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in SECRET_KEYS


def show(value: Any, path: str = "") -> str:
    """Quote a user value for a message, short and on one line; a secret's value is never shown."""
    if _is_secret(path):
        return "the value (not shown: it is a secret)"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
