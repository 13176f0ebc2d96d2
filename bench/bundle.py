"""Benchmark ``kubeha bundle pack`` and ``verify`` on a 1 GiB image archive against coreutils + GNU tar.

Prints throughput as a ratio to the plain tools on the same file in the same run (pack vs ``sha256sum`` +
``tar -cf``; verify of the tar vs ``sha256sum`` + ``tar -tf`` of it; verify of the directory vs
``sha256sum -c``) and the peak memory of each kubeha phase, measured in a child process (ru_maxrss of the
whole interpreter) and with tracemalloc (Python allocations only). Targets: ratio >= 0.8, peak < 100 MB.

    .venv/bin/python bench/bundle.py [--size-mib 1024] [--repeat 2] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BLOCK = 16 << 20


class _Pattern(io.RawIOBase):
    """``size`` bytes of a repeated 16 MiB random block, streamed (never held whole in memory)."""

    def __init__(self, size: int) -> None:
        self.left, self.block, self.pos = size, os.urandom(BLOCK), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buf), self.left, BLOCK - self.pos)
        buf[:n] = self.block[self.pos : self.pos + n]
        self.pos, self.left = (self.pos + n) % BLOCK, self.left - n
        return n


def make_archive(path: Path, size: int) -> None:
    """A docker-archive with one image whose single layer holds ``size`` bytes."""
    layer = path.parent / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Pattern(size), BLOCK))
    digest = hashlib.sha256()
    with layer.open("rb") as fh:
        while chunk := fh.read(BLOCK):
            digest.update(chunk)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + digest.hexdigest()]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["kubeha.local/bench:1"], "Layers": [digest.hexdigest() + "/layer.tar"]}]
    ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(layer, digest.hexdigest() + "/layer.tar")
    layer.unlink()


def make_key(home: Path) -> str:
    """A throwaway ed25519 signing key; returns its fingerprint."""
    home.mkdir(mode=0o700)
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            "bench <bench@kubeha.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["gpg", "--homedir", str(home), "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def timed(argv: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Run a command; return (wall seconds, its peak RSS in bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return elapsed, usage.ru_maxrss * 1024


def child(args: argparse.Namespace) -> None:
    """One kubeha phase in this (child) process, with tracemalloc; prints its Python peak."""
    import tracemalloc

    from kubeha.bundle import PackInput, pack_bundle, verify_bundle
    from kubeha.bundle.signing import Signer

    work = Path(args.work)
    tracemalloc.start()
    if args.phase == "pack":
        docs = {"master1": {"user-data": b"#cloud-config\n{}\n", "meta-data": b"instance-id: m1\n"}}
        pack_bundle(work / "out", docs, PackInput("bench", work / "images.tar"), Signer(work / "gnupg", args.key))
    else:
        target = work / "out" / ("bench.tar" if args.phase == "verify-tar" else "bench")
        report = verify_bundle(target, work / "key.asc")
        if not report.ok:
            raise SystemExit(f"verify failed: {report.errors}")
    print(tracemalloc.get_traced_memory()[1])


def kubeha_phase(work: Path, phase: str, key: str) -> tuple[float, int, int]:
    """Run a phase in a child interpreter: (seconds, child peak RSS bytes, tracemalloc peak bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", phase, "--work", str(work), "--key", key],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"kubeha {phase} failed")
    return elapsed, usage.ru_maxrss * 1024, int(out.strip().splitlines()[-1])


def run(size_mib: int, repeat: int) -> dict[str, float]:
    """The whole benchmark; returns the figures (best of ``repeat`` for every timing)."""
    work = Path(tempfile.mkdtemp(prefix="kubeha-bench-", dir=os.environ.get("KUBEHA_BENCH_DIR")))
    try:
        images = work / "images.tar"
        make_archive(images, size_mib << 20)
        key = make_key(work / "gnupg")
        (work / "key.asc").write_bytes(
            subprocess.run(
                ["gpg", "--homedir", str(work / "gnupg"), "--armor", "--export", key], check=True, capture_output=True
            ).stdout
        )
        best: dict[str, float] = {}
        peaks: dict[str, float] = {}
        for _ in range(repeat):
            figures = _one_round(work, images, key)
            for name, value in figures.items():
                table = peaks if name.endswith("_bytes") else best
                table[name] = (
                    max(table.get(name, 0), value)
                    if name.endswith("_bytes")
                    else min(table.get(name, float("inf")), value)
                )
        size = images.stat().st_size
        result = {"image_bytes": size, **best, **peaks}
        result["pack_ratio"] = (best["sha256sum_s"] + best["tar_c_s"]) / best["pack_s"]
        result["verify_tar_ratio"] = (best["sha256sum_tar_s"] + best["tar_t_s"]) / best["verify_tar_s"]
        result["verify_dir_ratio"] = best["sha256sum_c_s"] / best["verify_dir_s"]
        result["pack_mib_s"] = size / best["pack_s"] / (1 << 20)
        result["verify_tar_mib_s"] = size / best["verify_tar_s"] / (1 << 20)
        return result
    finally:
        subprocess.run(["gpgconf", "--homedir", str(work / "gnupg"), "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def _one_round(work: Path, images: Path, key: str) -> dict[str, float]:
    """Baselines and kubeha phases once, on a warm page cache."""
    shutil.rmtree(work / "out", ignore_errors=True)
    (work / "plain.tar").unlink(missing_ok=True)
    fig: dict[str, float] = {}
    fig["sha256sum_s"], _ = timed(["sha256sum", str(images)])
    fig["tar_c_s"], _ = timed(["tar", "-cf", str(work / "plain.tar"), "-C", str(work), images.name])
    (work / "plain.tar").unlink()
    fig["pack_s"], fig["pack_rss_bytes"], fig["pack_py_bytes"] = kubeha_phase(work, "pack", key)
    bundle_tar = work / "out" / "bench.tar"
    fig["sha256sum_tar_s"], _ = timed(["sha256sum", str(bundle_tar)])
    fig["tar_t_s"], _ = timed(["tar", "-tf", str(bundle_tar)])
    fig["verify_tar_s"], fig["verify_tar_rss_bytes"], fig["verify_tar_py_bytes"] = kubeha_phase(work, "verify-tar", key)
    fig["sha256sum_c_s"], _ = timed(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=work / "out" / "bench")
    fig["verify_dir_s"], fig["verify_dir_rss_bytes"], fig["verify_dir_py_bytes"] = kubeha_phase(work, "verify-dir", key)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.phase = args.child
        child(args)
        return
    result = run(args.size_mib, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    mib = 1 << 20
    print(f"image archive {result['image_bytes'] / mib:.0f} MiB, best of {args.repeat}")
    print(
        f"pack        {result['pack_s']:6.2f} s  {result['pack_mib_s']:7.0f} MiB/s  ratio {result['pack_ratio']:.2f}"
        f"  (sha256sum {result['sha256sum_s']:.2f} s + tar -cf {result['tar_c_s']:.2f} s)"
        f"  peak RSS {result['pack_rss_bytes'] / mib:.0f} MiB, Python {result['pack_py_bytes'] / mib:.1f} MiB"
    )
    print(
        f"verify tar  {result['verify_tar_s']:6.2f} s  {result['verify_tar_mib_s']:7.0f} MiB/s  ratio "
        f"{result['verify_tar_ratio']:.2f}  (sha256sum {result['sha256sum_tar_s']:.2f} s + tar -tf "
        f"{result['tar_t_s']:.2f} s)  peak RSS {result['verify_tar_rss_bytes'] / mib:.0f} MiB, Python "
        f"{result['verify_tar_py_bytes'] / mib:.1f} MiB"
    )
    print(
        f"verify dir  {result['verify_dir_s']:6.2f} s  ratio {result['verify_dir_ratio']:.2f}  (sha256sum -c "
        f"{result['sha256sum_c_s']:.2f} s)  peak RSS {result['verify_dir_rss_bytes'] / mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
