"""The images' Debian base, made without any registry: debootstrap, slim down, tar, ``docker import``.

``kubeha image base`` (and the tests' image fixtures) use this. The suite is the recipe's base's
(``base: debian:SUITE-slim`` gives ``SUITE``) and the import is tagged with that same ref, so ``kubeha image
build`` finds it under the one name the recipe, README and docker/README use. The rootfs tarball is cached
under the cache root (:func:`cache_root`) keyed by everything that shapes it, so only the first run pays for
debootstrap (about 40 s). Needs root (debootstrap, chroot) and the host's apt mirror, never a registry.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kubeha.errors import KubehaError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# Bump when the recipe below changes, so cached tarballs made by an older recipe are not reused.
RECIPE_VERSION = "5"
IMPORT_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["bash"]',
]
# What a slim Debian image leaves out (docs, man pages, locales); apt's package lists and caches are
# rebuilt by `apt-get update` in each Dockerfile, so they never belong in the base either.
STRIP = [
    "usr/share/man", "usr/share/info", "usr/share/groff", "usr/share/lintian",
    "usr/share/locale", "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/templates.dat-old",
    "var/log", "tmp",
]
SLIM_DPKG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
"""
NO_RECOMMENDS = 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'


class BaseError(KubehaError):
    """The base cannot be made here: not root, a missing tool, debootstrap or apt failed."""


def suite_of(base: str) -> str:
    """The Debian suite of a base ref (``debian:SUITE-slim`` -> ``SUITE``), or BaseError."""
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?debian:([a-z]+)(?:-slim)?", base)
    if not match:
        raise BaseError(f"the recipe's base {base!r} is not debian:SUITE[-slim]: kubeha makes only Debian bases; "
                        "build yours and pass it to `kubeha image build --base`")
    return match.group(1)


def cache_root() -> Path:
    """$KUBEHA_CACHE, else /var/cache/kubeha for root, else ${XDG_CACHE_HOME:-~/.cache}/kubeha.

    The rule tests/fixtures/cache.py and k8s/build.py apply too: one place outside any clone.
    """
    env = os.environ.get("KUBEHA_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/kubeha")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubeha"


def host_mirrors(suite: str, sources: Path = HOST_SOURCES) -> tuple[str, str]:
    """The Debian and Debian-security mirrors the host's apt uses (deb822), with Debian's defaults."""
    mirror, security = os.environ.get("KUBEHA_DEBIAN_MIRROR", ""), ""
    text = sources.read_text() if sources.is_file() else ""
    for stanza in re.split(r"\n\s*\n", text):
        uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
        suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
        if not uris or not suites:
            continue
        if f"{suite}-security" in suites.group(1).split():
            security = security or uris.group(1)
        elif suite in suites.group(1).split():
            mirror = mirror or uris.group(1)
    return mirror or DEFAULT_MIRROR, security or DEFAULT_SECURITY_MIRROR


def base_key(suite: str) -> str:
    """A short digest of everything that shapes the base tarball."""
    mirror, security = host_mirrors(suite)
    recipe = "\n".join([RECIPE_VERSION, suite, mirror, security, SLIM_DPKG, NO_RECOMMENDS, *STRIP])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def _sources(suite: str, mirror: str, security: str) -> str:
    """The deb822 sources of the image: the same suites as Debian's own images, on the host's mirrors."""
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    stanza = "Types: deb\nURIs: {}\nSuites: {}\nComponents: main\nSigned-By: " + keyring + "\n"
    return stanza.format(mirror, f"{suite} {suite}-updates") + "\n" + stanza.format(security, f"{suite}-security")


def require_tools() -> None:
    """Root and debootstrap, or BaseError saying what to do."""
    if os.geteuid() != 0:
        raise BaseError("making the image base needs root (debootstrap and chroot): run it with sudo")
    if shutil.which("debootstrap") is None:
        raise BaseError("debootstrap not found: install it with `apt-get install -y debootstrap`")


def _failed(what: str, run: subprocess.CompletedProcess[str]) -> BaseError:
    said = [ln for ln in (run.stderr + run.stdout).splitlines() if ln.strip()]
    return BaseError(f"{what} failed ({run.returncode}): {said[-1] if said else 'no output'}")


def _configure_apt(root: Path, suite: str, mirror: str, security: str) -> None:
    """Point apt at the host's mirrors (with updates and security) and set dpkg/apt up like a slim image."""
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(_sources(suite, mirror, security))
    (root / "etc/dpkg/dpkg.cfg.d/90-kubeha-slim").write_text(SLIM_DPKG)
    (root / "etc/apt/apt.conf.d/90-kubeha-slim").write_text(NO_RECOMMENDS)


def _upgrade(root: Path) -> None:
    """Apply <suite>-updates and security fixes (debootstrap only installs from the release)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    for argv in (["apt-get", "update"], ["apt-get", "-y", "upgrade"], ["apt-get", "clean"]):
        run = subprocess.run(["chroot", str(root), *argv], env=env, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise _failed(f"{' '.join(argv)} in the base tree", run)


def _strip_docs(doc: Path) -> None:
    """Remove package docs but keep each package's copyright file (licences travel with the binaries)."""
    for path in sorted(doc.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink() or path.is_file():
            if path.name != "copyright":
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _slim(root: Path) -> None:
    """Remove what a container never reads (docs, locales, apt lists and caches, logs)."""
    _strip_docs(root / "usr/share/doc")
    for rel in STRIP:
        target = root / rel
        if target.is_dir():
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        elif target.exists():
            target.unlink()


def build_base_tarball(output: Path, suite: str) -> Path:
    """Debootstrap a minimal Debian ``suite`` tree, slim it, and tar it to ``output`` (atomically)."""
    require_tools()
    mirror, security = host_mirrors(suite)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".base-", dir=output.parent))
    try:
        root = work / "root"
        run = subprocess.run(["debootstrap", "--variant=minbase", suite, str(root), mirror],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise _failed(f"debootstrap {suite} from {mirror}", run)
        _configure_apt(root, suite, mirror, security)
        _upgrade(root)
        _slim(root)
        partial = work / "base.tar"
        # dev/ and proc/ entries come from the runtime, not the image.
        subprocess.run(["tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
                        "--exclude=./sys/*", "-C", str(root), "-cf", str(partial), "."], check=True)
        os.replace(partial, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return output


def tarball_path(suite: str, cache: Path | None = None) -> Path:
    """Where the base tarball of ``suite`` is cached: ``<cache>/image-base/<suite>-<key>.tar``."""
    return (cache or cache_root()) / "image-base" / f"{suite}-{base_key(suite)}.tar"


def ensure_base_tarball(suite: str, cache: Path | None = None) -> Path:
    """The cached base tarball of ``suite``, built first if missing (older ones of the suite removed)."""
    target = tarball_path(suite, cache)
    if target.is_file():
        return target
    build_base_tarball(target, suite)
    for stale in target.parent.glob(f"{suite}-*.tar"):  # made by an older recipe or for another mirror
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def import_base(client: Any, tarball: Path, ref: str) -> str:
    """``docker import`` the tarball into the daemon behind ``client`` as ``ref``; return the image ID."""
    repository, tag = ref.rsplit(":", 1)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=IMPORT_CHANGES)
    return str(client.images.get(ref).id)
