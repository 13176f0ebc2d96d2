"""Benchmark the node-side install (kubeha-install) with the real images: verify + import, and the staging copy.

Packs examples/cluster.yaml with the real keepalived/haproxy archive (the test cache's, built by
``kubeha image build`` + ``save``; pass ``--images`` for another), then runs the real node script over a fake
root (KUBEHA_ROOT) with a private containerd, from the bundle tar and from the bundle directory, each time
with an empty image store. Prints the script's own per-step timings (status.json), the whole run, and the
cost of the staging copy next to plain ``cp`` + ``sha256sum`` of the same tar. Needs root and containerd.

    KUBEHA_CACHE=/work/cache .venv/bin/python bench/node_install.py [--images images.tar] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e")]

from daemons import ctr, running, start_containerd  # noqa: E402

from kubeha.bundle.pack import pack_inventory  # noqa: E402
from kubeha.bundle.signing import Signer  # noqa: E402


def default_images() -> Path:
    from fixtures.images import ensure_images_tar

    return ensure_images_tar()


def make_key(home: Path) -> str:
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "bench <bench@kubeha.invalid>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    out = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def fake_root(user_data: bytes, root: Path) -> None:
    """Apply the user-data's write_files to ``root`` (what cloud-init does before runcmd)."""
    for entry in yaml.safe_load(user_data)["write_files"]:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        content = entry["content"]
        data = gzip.decompress(base64.b64decode(content)) if entry.get("encoding") == "gz+b64" else content.encode()
        path.write_bytes(data)
        path.chmod(int(entry["permissions"], 8))


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def one_install(work: Path, daemon: object, user_data: bytes, source: str, refs: list[str]) -> dict[str, float]:
    """A fresh node root with the bundle at ``source`` inside it, an empty image store, one run of the script."""
    root = work / "root"
    shutil.rmtree(root, ignore_errors=True)
    fake_root(user_data, root)
    src, dest = work / "srv" / Path(source).name, root / source.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copy(src, dest)
    env_file = root / "etc/kubeha/install.env"
    env_file.write_text("".join(f"KUBEHA_BUNDLE={source}\n" if line.startswith("KUBEHA_BUNDLE=") else line + "\n"
                                for line in env_file.read_text().splitlines()))
    for ref in refs:
        ctr(daemon, "images", "rm", ref)  # type: ignore[arg-type]
    ctr(daemon, "content", "prune", "references")  # type: ignore[arg-type]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KUBEHA_ROOT": str(root), "KUBEHA_CONSOLE": str(work / "console"),
           "CONTAINERD_ADDRESS": str(daemon.socket)}  # type: ignore[attr-defined]
    start = time.perf_counter()
    proc = subprocess.run(["sh", str(root / "usr/local/sbin/kubeha-install")], env=env, capture_output=True,
                          text=True, timeout=1800, check=False)
    total = time.perf_counter() - start
    if proc.returncode != 0 or "images=imported" not in proc.stdout:
        raise SystemExit(f"install failed: {proc.stdout}{proc.stderr}")
    status = json.loads((root / "var/lib/kubeha/status.json").read_text())
    return {"total_s": total, **{f"{s['name']}_s": float(s["seconds"]) for s in status["steps"]}}


def run(images: Path, repeat: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="kubeha-bench-node-", dir=os.environ.get("KUBEHA_BENCH_DIR")))
    try:
        inventory = work / "cluster.yaml"
        shutil.copy(REPO / "examples" / "cluster.yaml", inventory)
        fpr = make_key(work / "gnupg")
        bundle = pack_inventory(inventory, images, Signer(work / "gnupg", fpr), work / "out", name="kubeha")
        user_data = (bundle.directory / "nodes" / "master1" / "user-data").read_bytes()
        (work / "srv").mkdir()
        shutil.copy(bundle.tarball, work / "srv" / "kubeha.tar")
        shutil.copytree(bundle.directory, work / "srv" / "kubeha")
        refs = sorted({line.split()[1] for line in (bundle.directory / "images/index.txt").read_text().splitlines()})
        figures: dict[str, object] = {"bundle_tar_bytes": bundle.tarball.stat().st_size,
                                      "image_bytes": images.stat().st_size}
        with running(start_containerd, "nodebench") as daemon:
            for kind, source in (("tar", "/srv/kubeha.tar"), ("dir", "/srv/kubeha")):
                runs = [one_install(work, daemon, user_data, source, refs) for _ in range(repeat)]
                figures[kind] = {k: min(r[k] for r in runs) for k in runs[0]}
        copy = work / "copy.tar"
        figures["cp_s"] = min(timed(["cp", str(bundle.tarball), str(copy)]) for _ in range(repeat))
        figures["sha256sum_s"] = min(timed(["sha256sum", str(bundle.tarball)]) for _ in range(repeat))
        figures["ctr_import_s"] = _plain_import(bundle.directory / "images/images.tar")
        return figures
    finally:
        subprocess.run(["gpgconf", "--homedir", str(work / "gnupg"), "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def _plain_import(tar: Path) -> float:
    """``ctr images import`` of the image archive alone into a fresh private containerd (the floor)."""
    with running(start_containerd, "nodebench2") as daemon:
        start = time.perf_counter()
        ctr(daemon, "images", "import", str(tar), timeout=1800)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="docker-archive (default: the test cache's real images)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.images or default_images(), args.repeat)
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return
    mib = 1 << 20
    print(f"bundle tar {figures['bundle_tar_bytes'] / mib:.0f} MiB (images {figures['image_bytes'] / mib:.0f} MiB), "
          f"best of {args.repeat}, empty image store each run")
    for kind in ("tar", "dir"):
        f = figures[kind]
        assert isinstance(f, dict)
        print(f"from {kind}: total {f['total_s']:.2f} s = stage {f['stage_s']:.2f} + verify {f['verify_s']:.2f} "
              f"+ images {f['images_s']:.2f} + manifests {f['manifests_s']:.2f}")
    print(f"plain: cp {figures['cp_s']:.2f} s, sha256sum {figures['sha256sum_s']:.2f} s, "
          f"ctr images import alone {figures['ctr_import_s']:.2f} s")


if __name__ == "__main__":
    main()
