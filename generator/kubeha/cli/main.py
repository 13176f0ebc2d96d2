"""The ``kubeha`` command line: the app, its lazy command groups, ``check`` and ``gen userdata``.

Every command runs inside :func:`kubeha.cli.common.session` (one place for stderr messages, exit codes,
the ``--json`` envelope, Ctrl-C and a closed stdout); each is a thin layer over one library call.
"""

from __future__ import annotations

import importlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from kubeha import __version__
from kubeha.cli.common import (
    STDOUT,
    Session,
    UsageError,
    check_output_dir,
    complete_inventory,
    quiet_stdout,
    session,
)
from kubeha.cli.helptext import plain_help
from kubeha.cli.options import Format, MergeDirOpt, MergeOpt, Target
from kubeha.errors import ExitCode

# Command groups in their own modules, imported only when used: they pull in the Docker SDK, GnuPG, rich
# and pycdlib, which would triple `kubeha --help` start-up. name -> (module, attribute, one-line help).
LAZY_COMMANDS: dict[str, dict[str, tuple[str, str, str]]] = {
    "kubeha": {
        "image": ("kubeha.cli.image", "app", "Build, save and inspect the container images a bundle ships."),
        "bundle": ("kubeha.cli.bundle", "app", "Pack and verify signed offline bundles."),
        "keys": ("kubeha.cli.keys", "app", "Certify the keys that sign a cluster's bundles (offline root key)."),
        "drill": ("kubeha.cli.drill", "app", "Failover drill: break the VIP holder in a namespaced lab and measure."),
    },
    "gen": {
        "seed-iso": ("kubeha.cli.seediso", "seed_iso", "One NoCloud seed ISO per node, with the bundle."),
        "http-tree": ("kubeha.cli.httptree", "http_tree", "A verified bundle's node documents as an HTTP tree."),
    },
}


class LazyGroup(TyperGroup):
    """A Typer group whose listed sub-commands are imported on first use (see LAZY_COMMANDS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Typer builds the group with its eager commands: give their help plain metavars."""
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            plain_help(command)

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
            command = plain_help(typer.main.get_command(obj))
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
    add_completion=True,  # --install-completion / --show-completion for bash, zsh and fish
    rich_markup_mode=None,  # plain help text: rich's help renderer alone costs ~200 ms of start-up
    cls=LazyGroup,
    epilog="Exit codes: 0 ok, 1 invalid input or failure, 2 usage, 3 checksum mismatch, 4 bad signature, "
    "130 interrupted.",
)
gen_app = typer.Typer(help="Generate per-node provisioning documents.", no_args_is_help=True, cls=LazyGroup,
                      rich_markup_mode=None)
app.add_typer(gen_app, name="gen")



InventoryArg = Annotated[
    Path, typer.Argument(help="Inventory: Ansible INI (the seed's hosts file, kubespray's), Ansible or native "
                         "YAML (.yaml/.yml), or ansible-inventory --list JSON (.json, or - for stdin).",
                         show_default=False, metavar="INVENTORY", autocompletion=complete_inventory)
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
MastersGroupOpt = Annotated[str | None, typer.Option(
    "--masters-group", help="Ansible group of the masters (default: masters_group in [all:vars], else k8s-master "
    "or kube_control_plane).", show_default=False)]
WorkersGroupOpt = Annotated[str | None, typer.Option(
    "--workers-group", help="Ansible group of the workers (default: workers_group, else k8s-node or kube_node).",
    show_default=False)]


def run() -> None:
    """The console script: the app, with a closed stdout ending quietly (``kubeha --help | head -1``)."""
    try:
        app()
    except BrokenPipeError:
        quiet_stdout()
        sys.exit(ExitCode.OK)
    except SystemExit as exc:
        # Typer's parser turns EPIPE (e.g. while printing --help) into exit 1 after wrapping stdout in
        # a "pacify flush" wrapper: that wrapper is the sign the reader went away, which is not a failure.
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":
            quiet_stdout()
            sys.exit(ExitCode.OK)
        raise exc from None


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
def check(inventory: InventoryArg, strict: StrictOpt = False, as_json: JsonOpt = False,
          masters_group: MastersGroupOpt = None, workers_group: WorkersGroupOpt = None,
          target: Annotated[Target | None, typer.Option(
              "--target", help="Also check the inventory against a target and print what its network must "
              "allow (refused: a VRRP VIP on aws, azure, gce).")] = None) -> None:
    """Validate an inventory; print every problem with file:line, the derived plan and failover budget."""
    from kubeha.context import plan  # noqa: PLC0415 - keep `kubeha --help` fast
    from kubeha.generate import delivery_hints, load_cluster  # noqa: PLC0415

    with session("check", as_json=as_json) as s:
        loaded = load_cluster(inventory, strict=strict, masters_group=masters_group, workers_group=workers_group)
        hints = delivery_hints(loaded.cluster, target.value) if target else []
        s.warn(loaded.warnings)
        s.result = {**plan(loaded.cluster), "hints": hints} if target else plan(loaded.cluster)
        if not as_json:
            _print_plan(s.result)
            for hint in hints:
                print(f"note: {hint}")


def _print_plan(result: dict[str, Any]) -> None:
    vrrp = result["vrrp"]
    print(f"cluster {result['cluster']}: endpoint {result['endpoint']}, VIP {result['vip']}, "
          f"virtual_router_id {result['virtual_router_id']}")
    print(f"profile {result['profile']}: VRRPv{vrrp['version']} {vrrp['mode']}, advert {vrrp['advert_s']:g} s, "
          f"check weight {result['weight']}" + (" (a failed check faults the node)" if not result["weight"] else ""))
    for m in result["masters"]:
        print(f"  {m['name']:<20} {m['address']:<16} {m['state']:<7} priority {m['priority']:>3}  {m['interface']}")
    print(f"  + {len(result['workers'])} worker(s) reaching the control plane at {result['endpoint']}")
    budget = result["failover_worst_case_s"]
    if "check" in result:  # vip_mode vrrp: keepalived's check and the failback policy
        print(f"check: {result['check']}; failback: {result['failback']}")
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


def complete_nodes(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for --node: the node names of the inventory already on the command line."""
    from kubeha.generate import node_names  # noqa: PLC0415

    inventory = ctx.params.get("inventory") or _inventory_word()
    return [n for n in node_names(Path(inventory)) if n.startswith(incomplete)] if inventory else []


def _inventory_word() -> str | None:
    """The first existing file on the line being completed.

    While a value is still missing (``--node <TAB>``) the parser gives up on the whole line, so the
    inventory is found in the words the shell passed (bash: COMP_WORDS; zsh/fish: _TYPER_COMPLETE_ARGS).
    """
    import os  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    line = os.environ.get("COMP_WORDS") or os.environ.get("_TYPER_COMPLETE_ARGS") or ""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    return next((w for w in words[1:] if not w.startswith("-") and Path(w).is_file()), None)


OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Output directory: one folder per node, "
                                                "one cluster per directory (default bundles/out/userdata/CLUSTER); "
                                                "'-' with --node prints that node's document on stdout.",
                                                show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Write into a directory that holds files kubeha did "
                                        "not write (they are left alone).")]
NodeOpt = Annotated[str | None, typer.Option("--node", help="Only this node.", autocompletion=complete_nodes)]


@gen_app.command("userdata")
def gen_userdata(
    inventory: InventoryArg,
    output: OutputOpt = None,
    fmt: Annotated[Format, typer.Option("--format", help="Document format.")] = Format.cloud_init,
    target: Annotated[Target, typer.Option(
        "--target", help="Where the user-data goes, for its size budget and encodings.")] = Target.nocloud,
    layout: Annotated[Layout, typer.Option(
        "--layout", help="nodes: OUTPUT/<node>/...; http: a tree a static HTTP server hands to NoCloud-net and "
        "Ignition (with a README.txt naming the kernel arguments).")] = Layout.nodes,
    key_by: Annotated[KeyBy, typer.Option("--key-by", help="With --layout http: name directories by node name "
                                          "or by the inventory's per-host mac.")] = KeyBy.name,
    node: NodeOpt = None,
    force: ForceOpt = False,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
    masters_group: MastersGroupOpt = None,
    workers_group: WorkersGroupOpt = None,
    merge: MergeOpt = None,
    merge_dir: MergeDirOpt = None,
) -> None:
    """Write each node's provisioning documents: OUTPUT/<node>/user-data + meta-data (or config.ign).

    OUTPUT records what kubeha wrote and for which cluster (.kubeha-manifest.json): a re-run replaces each
    node's folder atomically and removes the folders of nodes that left the inventory; another cluster's
    directory is refused.
    """
    to_stdout = str(output) == STDOUT
    with session("gen userdata", as_json=as_json, writes=not to_stdout) as s:
        if to_stdout and (node is None or as_json or layout is Layout.http):
            raise UsageError("-o -: prints one node's document; give --node NAME (and no --json or --layout http)")
        if output is not None and not to_stdout:
            check_output_dir(output)
        _gen(s, inventory, output, fmt, target, layout, key_by, node, force, strict, (masters_group, workers_group),
             (tuple(merge or ()), merge_dir))


def _gen(s: Session, inventory: Path, output: Path | None, fmt: Format, target: Target, layout: Layout, key_by: KeyBy,
         node: str | None, force: bool, strict: bool, groups: tuple[str | None, str | None],
         merge: tuple[tuple[Path, ...], Path | None]) -> None:
    """The body of ``gen userdata``: build, fit to the target, write (or print one node's document)."""
    from kubeha.generate import (  # noqa: PLC0415
        MergeSpec,
        build_documents,
        delivery_hints,
        node_outputs,
        select_node,
        write_tree,
    )
    from kubeha.outdir import default_output  # noqa: PLC0415

    loaded, docs = build_documents(inventory, strict=strict, masters_group=groups[0], workers_group=groups[1])
    hints = delivery_hints(loaded.cluster, target.value)
    docs = select_node(docs, node)
    outputs = node_outputs(docs, fmt=fmt.value, target=target.value, merge=MergeSpec(*merge))
    s.warn(loaded.warnings)
    files = {name: o.files for name, o in outputs.items()}
    if output is None:  # each cluster its own place
        output = default_output(loaded.cluster.name)
        check_output_dir(output)
    if str(output) == STDOUT:
        name = "config.ign" if fmt is Format.ignition else "user-data"
        sys.stdout.buffer.write(files[docs[0].name][name])
        return
    removed: list[str] = []
    if layout is Layout.http:
        from kubeha.deliver.httptree import write_http_tree  # noqa: PLC0415

        dirs = write_http_tree(output, files, key_by=key_by.value, macs={d.name: d.mac for d in docs if d.mac},
                               force=force, only=node is not None)
    else:
        removed = write_tree(output, files, force=force, prune=node is None, cluster=loaded.cluster.name).removed
        dirs = {d.name: d.name for d in docs}
    for gone in removed:
        s.note(f"removed {output / gone}/ (no longer in the inventory)")
    rows = [{"node": d.name, "role": d.role, "dir": str(output / dirs[d.name]),
             "bytes": {k: len(v) for k, v in files[d.name].items()}, "user_data": outputs[d.name].fit or None}
            for d in docs]
    s.result = {"cluster": loaded.cluster.name, "output": str(output), "nodes": rows, "removed": removed,
                "hints": hints}
    for d in docs:
        s.out(f"{d.name:<20} {d.role:<7} {outputs[d.name].summary}  -> {output / dirs[d.name]}/")
    for hint in hints:
        s.out(f"note: {hint}")
