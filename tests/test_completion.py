"""Shell completion: bash's own completion machinery, fed the script `kubeha --show-completion bash`
prints, completes commands, choices, inventory files and the inventory's node names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubeha_test import EXAMPLES

BIN = Path(sys.executable).parent
# Source the generated script, then do what bash's readline does for `complete -F`: set COMP_WORDS and
# COMP_CWORD and call the registered function with the command name; print COMPREPLY one per line.
DRIVER = r"""
source <(kubeha --show-completion bash)
spec=$(complete -p kubeha)
fn=${spec#*-F }; fn=${fn%% *}
read -r -a COMP_WORDS <<< "$WORDS"
[[ "$WORDS" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
"$fn" kubeha
printf '%s\n' "${COMPREPLY[@]}"
"""


def complete(line: str, cwd: Path) -> list[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "WORDS": line}
    run = subprocess.run(["bash", "-c", DRIVER], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                         check=True)
    return [w for w in run.stdout.splitlines() if w]


@pytest.fixture
def here(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "cluster.yaml", tmp_path / "cluster.yaml")
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / "prod.ini").write_text("[k8s-master]\n")
    (tmp_path / "notes.txt").write_text("not an inventory")
    return tmp_path


@pytest.mark.parametrize(("line", "expected"), [
    ("kubeha ", ["check", "gen", "image", "bundle", "keys", "drill"]),
    ("kubeha ge", ["gen"]),
    ("kubeha gen ", ["userdata", "seed-iso", "http-tree"]),
    ("kubeha bundle ve", ["verify"]),
    ("kubeha gen userdata cluster.yaml --target a", ["aws", "azure"]),
    ("kubeha gen userdata cluster.yaml --format ", ["cloud-init", "ignition"]),
    ("kubeha check clu", ["cluster.yaml", "clusters/"]),
    ("kubeha check clusters/p", ["clusters/prod.ini"]),
    ("kubeha check no", []),  # notes.txt is not an inventory
    ("kubeha bundle pack c", ["cluster.yaml", "clusters/"]),
    ("kubeha gen userdata cluster.yaml --node ma", ["master1", "master2", "master3"]),
    ("kubeha gen userdata cluster.yaml --node w", ["worker1", "worker2"]),
    ("kubeha gen userdata nothere.yaml --node ", []),
])
def test_bash_completes(here: Path, line: str, expected: list[str]) -> None:
    assert complete(line, here) == expected


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_for_each_shell(shell: str) -> None:
    # Users get the script for the shell they run it from (detected from the parent process); Typer's
    # detection switch lets the test name the shell instead.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    run = subprocess.run([str(BIN / "kubeha"), "--show-completion", shell], capture_output=True, text=True,
                         timeout=60, check=False, env=env)
    assert run.returncode == 0, run.stderr
    assert "_KUBEHA_COMPLETE" in run.stdout and f"complete_{shell}" in run.stdout
