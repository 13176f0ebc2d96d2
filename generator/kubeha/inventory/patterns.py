"""Ansible host patterns: ``cp[01:03]``, ``198.18.0.[11:13]``, ``node-[a:c]``, ``w[1:9:2]``, ``host:port``.

Read the way ansible-core's inventory plugins read them: an optional ``:PORT`` (``[v6]:PORT`` in brackets) is
split off when the rest is a valid host name or address, then every ``[begin:end(:step)]`` expands, left to
right. The cases Ansible reads surprisingly (an empty range, multi-letter "alphabetic" bounds) are refused.
"""

from __future__ import annotations

import re
import string

_RANGE_PART = r"\[[^\]]*\]"
_HOSTPORT = re.compile(rf"((?:[^:\[\]]|{_RANGE_PART})*):([0-9]+)")
_BRACKETED = re.compile(r"\[(.+)\]:([0-9]+)")
_LABEL = rf"(?:\w|{_RANGE_PART})(?:[\w-]|{_RANGE_PART})*"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.UNICODE)
_V4_PART = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_RANGE_PART})"
_IPV4 = re.compile(rf"(?:{_V4_PART}\.){{3}}{_V4_PART}")
_IPV6ISH = re.compile(r"[0-9A-Fa-f:.\[\]]+")


class PatternError(ValueError):
    """A host pattern kubeha cannot read the way Ansible does; the message names the feature."""


def split_port(pattern: str) -> tuple[str, int | None]:
    """``(host pattern, port)``: the port is split off only where Ansible would (a valid host before it)."""
    for regex in (_BRACKETED, _HOSTPORT):
        m = regex.fullmatch(pattern)
        if m:
            host, port = m.group(1), int(m.group(2))
            if _valid_host(host):
                return host, port
            return pattern, None  # Ansible then keeps the whole text as the name
    return pattern, None


def _valid_host(host: str) -> bool:
    if _IPV4.fullmatch(host):
        return True
    if ":" in host:
        return bool(_IPV6ISH.fullmatch(host)) and host.count(":") >= 2
    m = _HOSTNAME.fullmatch(host)
    return bool(m) and not host.endswith(("-", "_"))


def expand(pattern: str) -> list[str]:
    """Every host name ``pattern`` stands for, in order (raises PatternError naming what is wrong)."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    body, sep, tail = rest.partition("]")
    if not sep:
        raise PatternError(f"host range in {pattern!r} has no closing ']'")
    out = []
    for item in _sequence(body, pattern):
        out.extend(expand(head + item + tail))
    return out


def _sequence(body: str, pattern: str) -> list[str]:
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise PatternError(f"host range [{body}] in {pattern!r} must be [begin:end] or [begin:end:step]")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not step_text.isdigit() or int(step_text) == 0:
        raise PatternError(f"host range [{body}] in {pattern!r}: the step must be a positive integer")
    step = int(step_text)
    if len(beg) == 1 and len(end) == 1 and beg in string.ascii_letters and end in string.ascii_letters:
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i > j:
            raise PatternError(f"host range [{body}] in {pattern!r} must have begin <= end")
        return list(string.ascii_letters[i : j + 1 : step])
    if not (beg.isascii() and beg.isdigit() and end.isascii() and end.isdigit()):
        raise PatternError(f"host range [{body}] in {pattern!r}: kubeha reads numeric ranges and one-letter "
                           "alphabetic ranges only")
    width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
    if width and len(end) != width:
        raise PatternError(f"host range [{body}] in {pattern!r}: zero-padded begin and end must have equal length")
    if int(beg) > int(end):
        raise PatternError(f"host range [{body}] in {pattern!r} is empty (begin > end): Ansible gives no hosts")
    return [str(n).zfill(width) for n in range(int(beg), int(end) + 1, step)]
