"""The cluster lab: real Kubernetes (built by k8s/build.py) in node containers that boot from kubeha's documents."""
