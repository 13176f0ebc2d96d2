"""``kubeha drill``: run the failover lab on an inventory's generated configs and print what happened.

The lead mounts :func:`drill` as ``kubeha drill`` (``app.command("drill")(cli_drill.drill)``); ``app`` is the
same command as a one-command Typer app, for tests and ``python -m kubeha.cli.drill``.
"""

from __future__ import annotations

import signal
import sys
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from kubeha import lab
from kubeha.cli.common import Session, session
from kubeha.errors import ExitCode


class ProfileChoice(StrEnum):
    """Failover profiles a drill can override the inventory's with (kubeha.profiles.PROFILES)."""

    fast = "fast"
    classic = "classic"


class RuntimeChoice(StrEnum):
    """What runs the static pods in the lab (kubeha.lab.RUNTIMES)."""

    containerd = "containerd"
    host = "host"

app = typer.Typer(help="Failover drill: break the VIP holder in a namespaced lab and measure.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False, rich_markup_mode=None,
                  add_completion=False)

COLUMNS = ("scenario", "target", "VIP moved in", "marked down in", "failed", "watch reconnect", "back in",
           "failed on restore", "watch on restore", "flaps", "two holders", "verdict")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so the lab's finally-blocks tear everything down."""
    raise KeyboardInterrupt


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def table_rows(results: list[lab.Result]) -> list[tuple[str, ...]]:
    """One row of text per result, in the order of :data:`COLUMNS`."""
    return [(r.scenario, r.target, _seconds(r.fault.moved_in), _seconds(r.fault.marked_down_in),
             f"{r.fault.failed}/{r.fault.requests}",
             _watch(r.fault.watch_gap), _seconds(r.restore.moved_in), f"{r.restore.failed}/{r.restore.requests}",
             _watch(r.restore.watch_gap), _flaps(r), f"{'SPLIT ' if r.split_brain else ''}{r.overlap_ms:.0f} ms",
             "; ".join(r.problems) or "ok")
            for r in results]


def _flaps(r: lab.Result) -> str:
    """Flaps, and blips (interim holders that yielded within one advert) when there were any."""
    blips = r.fault.blips + r.restore.blips
    return f"{r.flaps} ({blips} blip{'s' if blips > 1 else ''})" if blips else str(r.flaps)


def _watch(gap: float | None) -> str:
    """The watch's longest outage: "unbroken", seconds, or "never" when it did not come back."""
    if gap is None:
        return "never"
    return "unbroken" if gap == 0 else f"{gap:.2f} s"


def format_table(rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    """Plain aligned text table (stable for tests and logs, no terminal styling)."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [columns, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _load(source: Path, profile: str | None, remap: bool) -> tuple[lab.NodeFiles, dict[str, str]]:
    """Node files from an inventory or a ``kubeha gen userdata`` output directory; remap when asked."""
    if source.is_dir():
        if profile:
            raise lab.LabError("--profile needs an inventory, not generated output")
        files = lab.files_from_output_dir(source)
    else:
        files = lab.files_from_inventory(source, profile)
    mapping = lab.remap_addresses(files) if remap else {}
    lab.check_lab_addresses(lab.topology(files))
    return files, mapping


def _runtime(name: str, address: str, images: Path | None, topo: lab.Topology) -> lab.Runtime:
    """The runtime to start the static pods with (containerd checks its images first)."""
    if name == "host":
        return lab.HostRuntime()
    if not Path(address).is_socket():
        raise lab.LabError(f"cannot reach containerd at {address}: no socket there. Start containerd "
                           "(systemctl start containerd, or run `containerd` as root), or point --address at "
                           "its socket; --runtime host uses this machine's keepalived and haproxy instead")
    runtime = lab.ContainerdRuntime(address)
    if images:
        runtime.import_images(images)
    runtime.check_images(sorted({s.image for m in topo.masters for s in lab.container_specs(m)}))
    return runtime


@app.command()
def drill(
    inventory: Annotated[Path, typer.Argument(help="Inventory (INI or YAML), or a `kubeha gen userdata` "
                                              "output directory.", exists=True)],
    profile: Annotated[ProfileChoice | None, typer.Option(help="Override the inventory's failover profile."
                                                          )] = None,
    scenarios: Annotated[str, typer.Option(help="Comma-separated scenarios, in order.")] =
        ",".join(lab.DEFAULT_SCENARIOS),
    runtime: Annotated[RuntimeChoice, typer.Option(help="containerd: the built images via ctr; host: this "
                                                   "machine's keepalived and haproxy binaries.")
                       ] = RuntimeChoice.containerd,
    address: Annotated[str, typer.Option(help="containerd socket.")] = "/run/containerd/containerd.sock",
    images: Annotated[Path | None, typer.Option(help="Image archive to import into containerd first.",
                                                exists=True, dir_okay=False)] = None,
    remap: Annotated[bool, typer.Option(help="Move addresses outside 198.18.0.0/15 into it for the lab.")] =
        False,
    rate: Annotated[float, typer.Option(help="Client connections per second.", min=1, max=100)] = 20.0,
    logs: Annotated[Path | None, typer.Option(help="Keep the lab's logs and samples in this directory.")] =
        None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Break the VIP holder (kill, hang, cable, power) in a namespaced lab and measure the failover.

    Needs root, iproute2, openssl and curl, plus containerd (ctr) with the kubeha images,
    or keepalived and haproxy for --runtime host.

    Exits 1 when a scenario fails: VIP not on one healthy node, two holders, no move when the holder broke.
    """
    old = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with session("drill", as_json=as_json) as s:
            results, mapping = _run(inventory, profile.value if profile else None, scenarios, runtime.value,
                                    address, images, remap, rate, logs, as_json)
            _report(s, results, mapping)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _run(inventory: Path, profile: str | None, scenarios: str, runtime: str, address: str,
         images: Path | None, remap: bool, rate: float, logs: Path | None,
         quiet: bool) -> tuple[list[lab.Result], dict[str, str]]:
    """Validate the options, build the lab and run the scenarios."""
    if runtime not in lab.RUNTIMES:
        raise lab.LabError(f"--runtime must be one of {', '.join(lab.RUNTIMES)}")
    names = [s.strip() for s in scenarios.split(",") if s.strip()]
    lab.require_tools(runtime)
    files, mapping = _load(inventory, profile, remap)
    topo = lab.topology(files)
    rt = _runtime(runtime, address, images, topo)
    timing = lab.Timing.for_topology(topo, rate)

    def progress(r: lab.Result) -> None:
        if not quiet:
            typer.echo(f"{r.scenario}: {'; '.join(r.problems) or 'ok'}", err=True)

    return lab.run_drill(topo, rt, names, timing, logs, progress), mapping


def _report(s: Session, results: list[lab.Result], mapping: dict[str, str]) -> None:
    """Print the results as a table (or keep them for the JSON envelope); a failed scenario exits 1."""
    s.result = {"remapped": mapping, "results": [r.as_dict() for r in results]}
    if mapping:
        s.out("addresses remapped for the lab: " + ", ".join(f"{a} -> {b}" for a, b in mapping.items()))
    s.out(format_table(table_rows(results)))
    failed = [f"{r.scenario}: {'; '.join(r.problems)}" for r in results if r.problems]
    if failed:
        s.fail(ExitCode.INVALID, failed)


if __name__ == "__main__":
    sys.exit(app())
