"""Benchmark the images: build time, save time, archive size raw and zstd-compressed.

Starts its own dockerd (fresh data root, no build cache), imports the debootstrapped base (cached under
$KUBEHA_CACHE, built first if missing), builds both images, saves them to one archive and compresses it.
Target: both images together <= 60 MB compressed (zstd).

    .venv/bin/python bench/images.py [--zstd-level 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the daemon and base-image helpers live with the tests

import docker  # noqa: E402

from e2e.daemons import short_workdir, start_dockerd, stop_and_remove  # noqa: E402
from fixtures.image_base import BASE_REF, ensure_base_tarball, import_base  # noqa: E402
from kubeha.bundle import images  # noqa: E402

TARGET_MB = 60.0


def zstd_size(path: Path, level: int) -> tuple[int, float]:
    """Compressed size of ``path`` at a zstd level (streamed through the zstd CLI) and the time it took."""
    started = time.monotonic()
    proc = subprocess.Popen(["zstd", f"-{level}", "-T0", "-q", "-c", str(path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    size = 0
    while chunk := proc.stdout.read(1 << 20):
        size += len(chunk)
    if proc.wait() != 0:
        raise SystemExit("zstd failed (apt-get install -y zstd)")
    return size, time.monotonic() - started


def run(out_dir: Path, level: int) -> None:
    started = time.monotonic()
    base = ensure_base_tarball()
    print(f"base tarball       {base.stat().st_size / 1e6:8.1f} MB  ({time.monotonic() - started:.1f} s, cached)")
    daemon = start_dockerd(short_workdir("imgbench"))
    try:
        client = docker.DockerClient(base_url=daemon.address, timeout=1200)
        import_base(client, base)
        build_total = 0.0
        for spec in images.IMAGES.values():
            result = images.build_image(client, spec, images.default_docker_dir(), BASE_REF)
            build_total += result.seconds
            size = client.images.get(spec.ref).attrs["Size"]
            print(f"build {spec.name:<12} {result.seconds:8.1f} s   image {size / 1e6:6.1f} MB uncompressed")
        print(f"build total        {build_total:8.1f} s")
        saved = images.save_images(client, list(images.DEFAULT_REFS), out_dir / "images.tar")
        print(f"save               {saved.seconds:8.1f} s")
    finally:
        stop_and_remove(daemon)
    compressed, seconds = zstd_size(saved.archive, level)
    print(f"archive raw        {saved.size / 1e6:8.1f} MB  ({saved.size} bytes)")
    verdict = "meets" if compressed / 1e6 <= TARGET_MB else "MISSES"
    print(f"archive zstd -{level:<3}  {compressed / 1e6:8.1f} MB  ({compressed} bytes, {seconds:.1f} s) "
          f"{verdict} the {TARGET_MB:.0f} MB target")
    for info in saved.images:
        print(f"  {', '.join(info.refs):<32} {len(info.layers)} layers, {info.size / 1e6:6.1f} MB in archive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zstd-level", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the archive here instead of a temp dir")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep, args.zstd_level)
        return
    out = Path(tempfile.mkdtemp(prefix="kh-imgbench-"))
    try:
        run(out, args.zstd_level)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
