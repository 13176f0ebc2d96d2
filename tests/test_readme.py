"""README.md stays true: every `kubeha ...` line in it names a real command, and the quick start's make
targets exist. (The commands' behaviour is tested elsewhere; `make demo` itself runs in CI's setup.)"""

from __future__ import annotations

import re

from kubeha_test import REPO, run

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(?:sh)?\n(.*?)```", README, flags=re.S)


def _kubeha_lines() -> list[list[str]]:
    lines = []
    for block in BLOCKS:
        for line in block.splitlines():
            for part in line.split("&&"):
                words = part.split()
                if words and words[0] == "kubeha":
                    lines.append(words[1:])
    return lines


def test_every_readme_command_exists() -> None:
    lines = _kubeha_lines()
    assert len(lines) >= 10
    for words in lines:
        path = []
        for w in words:
            if not re.fullmatch(r"[a-z][a-z-]*", w):
                break
            path.append(w)
        code, stdout, stderr = run(*path, "--help")
        assert code == 0, (words, stderr)
        assert "Usage: kubeha " + " ".join(path) in " ".join(stdout.split())


def test_quick_start_targets_exist() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    targets = re.findall(r"^make (\S+)", quick, flags=re.M)
    assert targets[:2] == ["demo", "test"]
    makefile = (REPO / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
