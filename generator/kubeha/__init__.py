"""kubeha: highly available Kubernetes control planes for air-gapped installs.

Turns a cluster inventory into per-node cloud-init user-data / Ignition configs that run keepalived and
haproxy as static pods, and packs them with the container images into signed offline bundles.
"""

__version__ = "0.1.0"
