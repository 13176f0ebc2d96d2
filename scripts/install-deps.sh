#!/usr/bin/env bash
# Install the Debian 12 packages kubeha's tests and real-consumer checks need (run as root).
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail

PACKAGES=(
  python3-venv                         # the project virtualenv
  cloud-init                           # `cloud-init schema` and the real chroot runs
  keepalived haproxy                   # config tests and the failover lab
  ignition                             # ignition-validate and the Ignition binary
  debootstrap                          # guest trees and the image base
  docker.io containerd runc            # build/save/load images; ctr import/run
  skopeo                               # cross-check image archives
  podman                               # a real pod-YAML consumer
  genisoimage                          # isoinfo, to read seed ISOs back
  qemu-system-x86 qemu-utils           # the VM boot test
  e2fsprogs                            # mkfs.ext4 -d for the VM disk
  shellcheck systemd                   # lint the node install script; systemd-analyze verify its unit
  iproute2 curl ca-certificates openssl gnupg gpgv zstd xz-utils procps util-linux
  file                                 # tests/e2e/test_k8s_build.py: every built binary is static
)

if [ "${1:-}" = "--minimal" ]; then   # just what `make demo` needs: a Python that can make a venv
  PACKAGES=(python3-venv)
fi

# The failover lab runs a keepalived per node that watches its track file with inotify; the instances are
# counted per user (root: every daemon, container and test on the machine), and Debian's default of 128 ran out
# (keepalived then logs "Unable to monitor track files" and ignores the prober). kind raises it the same way.
if [ "${1:-}" != "--minimal" ] && [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 512 ]; then
  sysctl -q -w fs.inotify.max_user_instances=512
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
