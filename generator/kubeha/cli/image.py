"""``kubeha image``: build the keepalived and haproxy images, save them to one archive, inspect archives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from kubeha.bundle import images
from kubeha.cli.common import output_file, parents_made, session
from kubeha.errors import ExitCode, UsageError
from kubeha.recipe import Recipe, load_recipe

app = typer.Typer(
    help="Build, save and inspect the container images a bundle ships.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False, rich_markup_mode=None,
    add_completion=False,
)
err = Console(stderr=True)

DockerHost = Annotated[
    str | None,
    typer.Option("--docker-host", help="Docker daemon URL (default: $DOCKER_HOST, else unix:///var/run/docker.sock)."),
]
RecipeOpt = Annotated[Path | None, typer.Option(
    "--recipe", help="Bundle recipe naming the images, refs and versions (default: ./bundles/default.yaml, "
    "else the one shipped with kubeha).", dir_okay=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
DEFAULT_ARCHIVE = Path("bundles/out/images.tar")


@app.command()
def build(
    names: Annotated[
        list[str] | None, typer.Argument(help="Images to build, by recipe name (default: all of them).")
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="Base image (BASE_IMAGE build arg; default: the recipe's); never pulled.")
    ] = None,
    docker_dir: Annotated[
        Path | None, typer.Option(help="Folder with one sub-folder per image (default: the recipe's contexts, "
                                  "i.e. the docker/ folder shipped with kubeha).")
    ] = None,
    network: Annotated[str, typer.Option(help="Network for RUN steps (host reaches the host's apt mirror).")] = (
        images.DEFAULT_BUILD_NETWORK
    ),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not stream the build output.")] = False,
    docker_host: DockerHost = None,
    recipe: RecipeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the recipe's images with the Docker daemon, tagged with their fully qualified refs."""
    with session("image build", as_json=as_json) as s:
        plan = load_recipe(recipe)
        chosen = _chosen(plan, names)
        client = images.connect(docker_host)
        built = []
        for image in chosen:
            spec = images.ImageSpec(image.name, image.ref, image.version)
            err.print(f"[bold]building {spec.ref}[/bold] from {base or plan.base}")
            echo = None if quiet or as_json else _echo
            context = None if docker_dir else image.context
            result = images.build_image(client, spec, docker_dir or images.default_docker_dir(), base or plan.base,
                                        network, echo, context=context)
            built.append({"name": image.name, "ref": result.ref, "image_id": result.image_id,
                          "seconds": round(result.seconds, 3)})
            s.out(f"{result.ref} {result.image_id} ({result.seconds:.1f} s)")
        s.result = {"recipe": str(plan.path), "base": base or plan.base, "images": built}


@app.command("base")
def base_image(
    tag: Annotated[str | None, typer.Option("--tag", help="Import it as this ref (default: the recipe's base, "
                                            "which image build uses).")] = None,
    docker_host: DockerHost = None,
    recipe: RecipeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the recipe's base image from Debian packages and import it: no registry needed.

    debootstrap (as root) fetches the recipe's Debian suite from the host's apt mirror; the tree is slimmed
    like Debian's -slim images, cached as a tarball ($KUBEHA_CACHE, else /var/cache/kubeha for root) and
    `docker import`ed under the recipe's base ref (debian:SUITE-slim), so `kubeha image build` finds it.
    """
    from kubeha.bundle import imagebase  # noqa: PLC0415

    with session("image base", as_json=as_json) as s:
        plan = load_recipe(recipe)
        suite = imagebase.suite_of(plan.base)
        imagebase.require_tools()
        client = images.connect(docker_host)  # before a minute of debootstrap
        target = imagebase.tarball_path(suite)
        if not target.is_file():
            s.note(f"making the Debian {suite} base with debootstrap (about a minute, once; cached in {target})")
        tarball = imagebase.ensure_base_tarball(suite)
        ref = tag or plan.base
        image_id = imagebase.import_base(client, tarball, ref)
        s.result = {"ref": ref, "image_id": image_id, "suite": suite, "tarball": str(tarball)}
        s.out(f"{ref} {image_id} (Debian {suite}, from {tarball})")


def _echo(text: str) -> None:
    """Stream build output to stderr as it arrives (stdout is for the summary)."""
    sys.stderr.write(text)
    sys.stderr.flush()


def _chosen(plan: Recipe, names: list[str] | None) -> list[Any]:
    """The recipe's images named on the command line (all when none), rejecting unknown names (exit 2)."""
    known = [i.name for i in plan.images]
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise UsageError(f"unknown image(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    return [plan.image(n) for n in dict.fromkeys(names or known)]


@app.command()
def save(
    output: Annotated[Path, typer.Option("--output", "-o", help="Archive to write (docker-archive tar); a "
                                         "directory means DIR/images.tar.")] = DEFAULT_ARCHIVE,
    refs: Annotated[
        list[str] | None, typer.Argument(help="Fully qualified refs (default: the recipe's images).")
    ] = None,
    docker_host: DockerHost = None,
    recipe: RecipeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Save images to one docker-archive (atomically) with images.json beside it."""
    with session("image save", as_json=as_json, writes=True) as s:
        archive = output_file(output, DEFAULT_ARCHIVE.name)
        wanted = images.normalise_refs(refs or load_recipe(recipe).refs)
        client = images.connect(docker_host)
        images.require_refs(client, wanted)  # before estimating sizes, which needs every ref
        estimate = images.estimate_save_size(client, wanted)
        with parents_made(archive), _progress(as_json) as progress:
            task = progress.add_task(f"saving {archive.name}", total=estimate or None)
            result = images.save_images(client, wanted, archive, lambda n: progress.advance(task, n))
            progress.update(task, total=result.size, completed=result.size)
        s.result = {"archive": str(result.archive), "bytes": result.size, "sha256": result.sha256,
                    "metadata": str(result.archive.with_name(images.METADATA_NAME)), "refs": wanted,
                    "seconds": round(result.seconds, 3)}
        s.out(f"{result.archive} {result.size} bytes sha256:{result.sha256} ({result.seconds:.1f} s)")
        s.out(f"{result.archive.with_name(images.METADATA_NAME)}")


def _progress(quiet: bool = False) -> Progress:
    """A byte-counting progress bar on stderr."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=err, transient=False, disable=quiet,
    )


@app.command()
def inspect(
    archive: Annotated[Path, typer.Argument(help="A docker-archive tarball (e.g. images.tar).")],
    as_json: JsonOpt = False,
    verify: Annotated[bool, typer.Option(help="Also hash every layer against its recorded digest.")] = False,
) -> None:
    """List refs, image IDs, sizes and layer digests from the archive itself (no engine needed)."""
    with session("image inspect", as_json=as_json) as s:
        infos = images.inspect_archive(archive)
        problems = images.verify_archive(archive) if verify else []
        s.result = {"archive": str(archive), "images": [i.to_dict() for i in infos], "verified": verify}
        if not as_json:
            _print_table(infos)
        for problem in problems:
            print(f"{archive}: {problem}", file=sys.stderr)
        if problems:
            s.fail(ExitCode.CHECKSUM, [f"{archive}: {p}" for p in problems])


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
