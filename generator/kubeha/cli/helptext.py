"""Plain metavars in every ``--help``: ``FILE``, ``DIR``, ``TEXT``, ``N``, never a Python type.

Typer labels an option by its annotation (``<path>``, ``<str>``, ``<list[Path]>``, ``<float range>``) and a
required argument by its parameter name in braces (``{inventory}``). :func:`plain_help` walks a built click
command tree and gives each parameter a metavar in the usual Unix style instead; choices keep their list
(``<fast|classic>``), which is what a user needs to read.
"""

from __future__ import annotations

from typing import Any, TypeVar

from typer.core import TyperArgument, TyperOption

C = TypeVar("C")

# Typer's own labels (its type descriptor) -> the metavar shown instead.
_PATHS = {"file": "FILE", "dir": "DIR", "path": "PATH"}
_SCALARS = {"str": "TEXT", "int": "N", "float": "NUMBER", "bool": "BOOL"}


def _metavar(param: TyperArgument | TyperOption) -> str | None:
    """The Unix-style metavar for ``param``'s type, or None to keep Typer's (choices)."""
    desc = param.type_descriptor
    if desc.is_choice:
        return None
    if desc.is_path:
        return _PATHS.get(desc.path_type, "PATH")
    if desc.is_ranged:
        return _SCALARS.get(desc.ranged_type_name, "NUMBER")
    label = param.bare_type()
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    return _PATHS.get(label.lower()) or _SCALARS.get(label, "VALUE")


class _PlainArgument(TyperArgument):
    """An argument shown as ``INVENTORY`` (``[NAMES]...`` when optional and repeated) in the usage line."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if not self.required:
            name = f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the metavar says it: no "<path>" after it


def plain_help(command: C) -> C:
    """Give every parameter of a built ``command`` (and of its sub-commands already built) a plain metavar."""
    for param in getattr(command, "params", []):
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "ARG").upper()
            param.__class__ = _PlainArgument
        elif isinstance(param, TyperOption) and param.metavar is None and not param.is_flag:
            param.metavar = _metavar(param)
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command
