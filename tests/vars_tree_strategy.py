"""A hypothesis strategy for an Ansible inventory with group_vars/ and host_vars/ trees beside it.

It starts from inventory_strategy's models and moves some of the inline variables out into files, in every
layout ansible-core reads: ``NAME.yml``, ``NAME.yaml``, ``NAME.json``, ``NAME`` without an extension, and a
``NAME/`` directory of several files (sorted; a later file's key replaces an earlier one's, one file in a
sub-directory, one file with an extension Ansible skips). It also adds values that only the files set, so
their precedence against the inventory's own variables is exercised: a group_vars/all value against groups'
inline ones, a host_vars value against the host's line, an ``ansible_group_priority`` in a file.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import strategies as st

from inventory_strategy import Model, _value, models

HOST_FILE_KEYS = ["priority", "lb", "interface", "order"]


def _render(base: str, pairs: list[tuple[str, Any]], layout: str) -> dict[str, str]:
    """One group's or host's variables as files under ``base`` (group_vars/NAME or host_vars/NAME)."""
    doc = dict(pairs)
    if layout == "json":
        return {f"{base}.json": json.dumps(doc)}
    if layout in ("yml", "yaml"):
        return {f"{base}.{layout}": yaml.safe_dump(doc)}
    if layout == "noext":
        return {base: "---\n" + yaml.safe_dump(doc)}
    # a directory: the first half in 10-a.yml, the rest in sub/20-b.yaml (read after), plus files Ansible skips
    half = len(pairs) // 2
    out = {f"{base}/10-a.yml": yaml.safe_dump(dict(pairs[:half]) or {"unrelated": 1}),
           f"{base}/sub/20-b.yaml": yaml.safe_dump(dict(pairs[half:]) or {"unrelated": 2}),
           f"{base}/30-c.txt": "priority: 7\n", f"{base}/.hidden.yml": "priority: 9\n"}
    return out


LAYOUTS = st.sampled_from(["yml", "yaml", "json", "noext", "dir"])


@st.composite
def trees(draw: st.DrawFn) -> tuple[Model, dict[str, str]]:
    """A model (what stays inline) and the files beside it (relative path -> text)."""
    m = draw(models())
    files: dict[str, str] = {}
    for group in ["all", *m.groups]:
        inline = m.vars.get(group, [])
        moved = [kv for kv in inline if kv[0] not in ("cluster_name", "vip") and draw(st.booleans())]
        extra: list[tuple[str, Any]] = []
        if draw(st.integers(0, 3)) == 0:
            key = draw(st.sampled_from(["interface", "interface", "ansible_group_priority", "lb"]))
            extra.append((key, _value(draw, key)))
        if moved or extra:
            m.vars[group] = [kv for kv in inline if kv not in moved]
            files.update(_render(f"group_vars/{group}", moved + extra, draw(LAYOUTS)))
    hosts = list(dict.fromkeys(line.pattern for lines in m.lines.values() for line in lines if "[" not in line.pattern))
    for host in hosts:
        if draw(st.integers(0, 2)) == 0:
            keys = draw(st.lists(st.sampled_from(HOST_FILE_KEYS), unique=True, min_size=1, max_size=2))
            files.update(_render(f"host_vars/{host}", [(k, _value(draw, k)) for k in keys], draw(LAYOUTS)))
    return m, files
