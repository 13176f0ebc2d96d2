"""``kubeha image``: build the keepalived and haproxy images, save them to one archive, inspect archives."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from kubeha.bundle import images
from kubeha.errors import ExitCode, KubehaError

app = typer.Typer(
    help="Build, save and inspect the container images a bundle ships.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
err = Console(stderr=True)

DockerHost = Annotated[
    str | None,
    typer.Option("--docker-host", help="Docker daemon URL (default: $DOCKER_HOST, else unix:///var/run/docker.sock)."),
]


@contextmanager
def _reported() -> Iterator[None]:
    """Turn kubeha errors into a message on stderr and the error's exit code, never a traceback."""
    try:
        yield
    except KubehaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(int(exc.exit_code)) from None


@app.command()
def build(
    names: Annotated[
        list[str] | None, typer.Argument(help="Images to build: keepalived, haproxy (default: both).")
    ] = None,
    base: Annotated[
        str, typer.Option(help="Base image (BASE_IMAGE build arg); never pulled.")
    ] = images.DEFAULT_BASE_IMAGE,
    docker_dir: Annotated[
        Path | None, typer.Option(help="Folder with one sub-folder per image (default: the source tree's docker/).")
    ] = None,
    network: Annotated[str, typer.Option(help="Network for RUN steps (host reaches the host's apt mirror).")] = (
        images.DEFAULT_BUILD_NETWORK
    ),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not stream the build output.")] = False,
    docker_host: DockerHost = None,
) -> None:
    """Build the images with the Docker daemon, tagged with their fully qualified refs."""
    with _reported():
        specs = _specs(names or list(images.IMAGES))
        client = images.connect(docker_host)
        for spec in specs:
            err.print(f"[bold]building {spec.ref}[/bold] from {base}")
            echo = None if quiet else _echo
            result = images.build_image(client, spec, docker_dir or images.default_docker_dir(), base, network, echo)
            print(f"{result.ref} {result.image_id} ({result.seconds:.1f} s)")


def _echo(text: str) -> None:
    """Stream build output to stderr as it arrives (stdout is for the summary)."""
    sys.stderr.write(text)
    sys.stderr.flush()


def _specs(names: list[str]) -> list[images.ImageSpec]:
    """Map image names to specs, rejecting unknown ones."""
    unknown = [n for n in names if n not in images.IMAGES]
    if unknown:
        raise images.ImageError(f"unknown image(s) {', '.join(unknown)}: choose from {', '.join(images.IMAGES)}")
    return [images.IMAGES[n] for n in dict.fromkeys(names)]


@app.command()
def save(
    output: Annotated[Path, typer.Option("--output", "-o", help="Archive to write (docker-archive tar).")],
    refs: Annotated[
        list[str] | None, typer.Argument(help="Fully qualified refs (default: the keepalived and haproxy images).")
    ] = None,
    docker_host: DockerHost = None,
) -> None:
    """Save images to one docker-archive (atomically) with images.json beside it."""
    with _reported():
        wanted = images.normalise_refs(refs or images.DEFAULT_REFS)
        client = images.connect(docker_host)
        images.require_refs(client, wanted)  # before estimating sizes, which needs every ref
        estimate = images.estimate_save_size(client, wanted)
        with _progress() as progress:
            task = progress.add_task(f"saving {output.name}", total=estimate or None)
            result = images.save_images(client, wanted, output, lambda n: progress.advance(task, n))
            progress.update(task, total=result.size, completed=result.size)
        print(f"{result.archive} {result.size} bytes sha256:{result.sha256} ({result.seconds:.1f} s)")
        print(f"{result.archive.with_name(images.METADATA_NAME)}")


def _progress() -> Progress:
    """A byte-counting progress bar on stderr."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, transient=False,
    )


@app.command()
def inspect(
    archive: Annotated[Path, typer.Argument(help="A docker-archive tarball (e.g. images.tar).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    verify: Annotated[bool, typer.Option(help="Also hash every layer against its recorded digest.")] = False,
) -> None:
    """List refs, image IDs, sizes and layer digests from the archive itself (no engine needed)."""
    with _reported():
        infos = images.inspect_archive(archive)
        problems = images.verify_archive(archive) if verify else []
        if as_json:
            print(json.dumps([i.to_dict() for i in infos], indent=2, sort_keys=True))
        else:
            _print_table(infos)
        for problem in problems:
            print(f"{archive}: {problem}", file=sys.stderr)
        if problems:
            raise typer.Exit(int(ExitCode.CHECKSUM))


def _print_table(infos: list[images.ImageInfo]) -> None:
    """Human-readable listing: one block per image."""
    for info in infos:
        print(f"{', '.join(info.refs) or '<untagged>'}")
        print(f"  id:     {info.image_id}")
        print(f"  size:   {info.size} bytes ({info.size / 1e6:.1f} MB), {info.os}/{info.architecture}")
        for layer in info.layers:
            print(f"  layer:  {layer}")


if __name__ == "__main__":
    app()
