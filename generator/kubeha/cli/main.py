"""The ``kubeha`` command line: parse arguments, call one library function, map errors to exit codes.

Library errors are :class:`~kubeha.errors.KubehaError`; each has an exit code. Problems go to stderr as
``FILE:LINE: error: PATH: MESSAGE``; results go to stdout (``--json`` for machine-readable output).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from kubeha import __version__
from kubeha.errors import ExitCode, InvalidInput, KubehaError, Problem

# Command groups in their own modules, imported only when used: they pull in the Docker SDK, GnuPG, rich
# and pycdlib, which would triple `kubeha --help` start-up. name -> (module, attribute, one-line help).
LAZY_COMMANDS: dict[str, dict[str, tuple[str, str, str]]] = {
    "kubeha": {
        "image": ("kubeha.cli.image", "app", "Build, save and inspect the container images a bundle ships."),
        "bundle": ("kubeha.cli.bundle", "app", "Pack and verify signed offline bundles."),
        "drill": ("kubeha.cli.drill", "app", "Failover drill: break the VIP holder in a namespaced lab and measure."),
    },
    "gen": {
        "seed-iso": ("kubeha.cli.seediso", "seed_iso", "One NoCloud seed ISO per node, with the bundle."),
    },
}


class LazyGroup(TyperGroup):
    """A Typer group whose listed sub-commands are imported on first use (see LAZY_COMMANDS)."""

    def _lazy(self) -> dict[str, tuple[str, str, str]]:
        return LAZY_COMMANDS.get(self.name or "", {})

    def list_commands(self, ctx: Any) -> list[str]:
        """Eager commands first, then the lazy ones."""
        return [*super().list_commands(ctx), *(n for n in self._lazy() if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """Import a lazy command the first time it is asked for."""
        if cmd_name not in self.commands and cmd_name in self._lazy():
            module, attr, _ = self._lazy()[cmd_name]
            obj = getattr(importlib.import_module(module), attr)
            if not isinstance(obj, typer.Typer):
                obj = _single(obj, cmd_name)
            obj.rich_markup_mode = None  # the same plain help everywhere
            command = typer.main.get_command(obj)
            command.name = cmd_name
            self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """List lazy commands from their static help, without importing them."""
        limit = formatter.width - 6 - max(map(len, [*self.commands, *self._lazy()]), default=0)
        rows = [(n, c.get_short_help_str(limit)) for n, c in self.commands.items() if not c.hidden]
        rows += [(n, h) for n, (_, _, h) in self._lazy().items() if n not in self.commands]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _single(func: Any, name: str) -> typer.Typer:
    one = typer.Typer(rich_markup_mode=None, add_completion=False)
    one.command(name)(func)
    return one


app = typer.Typer(
    name="kubeha",
    help="Highly available Kubernetes control planes (keepalived + haproxy static pods) for air-gapped "
    "installs: inventory -> cloud-init / Ignition -> signed offline bundles.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help text: rich's help renderer alone costs ~200 ms of start-up
    cls=LazyGroup,
)
gen_app = typer.Typer(help="Generate per-node provisioning documents.", no_args_is_help=True, cls=LazyGroup,
                      rich_markup_mode=None)
app.add_typer(gen_app, name="gen")


class Format(StrEnum):
    """Output formats of ``kubeha gen userdata``."""

    cloud_init = "cloud-init"
    ignition = "ignition"


InventoryArg = Annotated[
    Path, typer.Argument(help="Inventory: the seed's Ansible INI hosts file, or YAML (.yaml/.yml).",
                         show_default=False)
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def print_problems(problems: list[Problem]) -> None:
    """All problems, sorted, one per line on stderr, then a one-line summary."""
    for p in sorted(problems):
        _err(str(p))
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    if errors:
        _err(f"kubeha: {errors} error(s), {warnings} warning(s); nothing written")


@contextmanager
def reporting() -> Iterator[None]:
    """Turn KubehaError into its message on stderr and its exit code; never a traceback."""
    try:
        yield
    except InvalidInput as exc:
        print_problems(exc.problems)
        raise typer.Exit(exc.exit_code) from None
    except KubehaError as exc:
        _err(f"kubeha: error: {exc}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _err("kubeha: interrupted; nothing written")
        raise typer.Exit(130) from None


def _version(value: bool) -> None:
    if value:
        print(f"kubeha {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Highly available Kubernetes control planes for air-gapped installs."""


@app.command()
def check(inventory: InventoryArg, strict: StrictOpt = False, as_json: JsonOpt = False) -> None:
    """Validate an inventory; print every problem with file:line, the derived plan and failover budget."""
    from kubeha.context import plan  # noqa: PLC0415 - keep `kubeha --help` fast
    from kubeha.generate import load_cluster  # noqa: PLC0415

    with reporting():
        loaded = load_cluster(inventory, strict=strict)
    for p in loaded.warnings:
        _err(str(p))
    result = plan(loaded.cluster)
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    _print_plan(result)


def _print_plan(result: dict[str, object]) -> None:
    print(f"cluster {result['cluster']}: endpoint {result['endpoint']}, VIP {result['vip']}, "
          f"virtual_router_id {result['virtual_router_id']}")
    print(f"profile {result['profile']}: VRRP{result['vrrp']}, check weight {result['weight']}")
    masters = result["masters"]
    assert isinstance(masters, list)
    for m in masters:
        print(f"  {m['name']:<20} {m['address']:<16} {m['state']:<7} priority {m['priority']:>3}  {m['interface']}")
    workers = result["workers"]
    assert isinstance(workers, list)
    print(f"  + {len(workers)} worker(s) reaching the control plane at {result['endpoint']}")
    print(f"check: {result['check']}; failback: {result['failback']}")
    budget = result["failover_worst_case_s"]
    assert isinstance(budget, dict)
    prober = f", {budget['prober_lost']} s if the prober dies or hangs" if "prober_lost" in budget else ""
    print(f"worst-case failover: {budget['haproxy_or_apiserver_path']} s when haproxy or the apiserver path "
          f"fails, {budget['link_or_power_loss']} s on link or power loss{prober} "
          f"(haproxy marks a dead apiserver down in {budget['haproxy_marks_dead_apiserver_down']} s)")


class Layout(StrEnum):
    """How ``kubeha gen userdata`` lays out its output directory."""

    nodes = "nodes"
    http = "http"


class KeyBy(StrEnum):
    """What names a node's directory in the HTTP layout."""

    name = "name"
    mac = "mac"


@gen_app.command("userdata")
def gen_userdata(
    inventory: InventoryArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory: one folder per node.")
                      ] = Path("out"),
    fmt: Annotated[Format, typer.Option("--format", help="Document format.")] = Format.cloud_init,
    target: Annotated[str, typer.Option(
        "--target", help="Where the user-data goes, for its size budget and encodings: nocloud, aws, azure, "
        "openstack, gce, vsphere, proxmox, generic.")] = "nocloud",
    layout: Annotated[Layout, typer.Option(
        "--layout", help="nodes: OUTPUT/<node>/...; http: a tree a static HTTP server hands to NoCloud-net and "
        "Ignition (with a README.txt naming the kernel arguments).")] = Layout.nodes,
    key_by: Annotated[KeyBy, typer.Option("--key-by", help="With --layout http: name directories by node name "
                                          "or by the inventory's per-host mac.")] = KeyBy.name,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write each node's provisioning documents: OUTPUT/<node>/user-data + meta-data (or config.ign)."""
    from kubeha.generate import build_documents, node_outputs, write_tree  # noqa: PLC0415

    with reporting():
        loaded, docs = build_documents(inventory, strict=strict)
        outputs = node_outputs(docs, fmt=fmt.value, target=target)
        for p in loaded.warnings:
            _err(str(p))
        files = {name: o.files for name, o in outputs.items()}
        if layout is Layout.http:
            from kubeha.deliver.httptree import write_http_tree  # noqa: PLC0415

            dirs = write_http_tree(output, files, key_by=key_by.value, macs={d.name: d.mac for d in docs if d.mac})
        else:
            write_tree(output, files)
            dirs = {d.name: d.name for d in docs}
    rows = [{"node": d.name, "role": d.role, "dir": str(output / dirs[d.name]), "summary": outputs[d.name].summary,
             "files": {k: len(v) for k, v in files[d.name].items()}} for d in docs]
    if as_json:
        print(json.dumps({"cluster": loaded.cluster.name, "nodes": rows}, indent=2, sort_keys=True))
        return
    for row in rows:
        print(f"{row['node']:<20} {row['role']:<7} {row['summary']}  -> {row['dir']}/")
