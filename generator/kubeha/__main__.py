"""``python -m kubeha``: the same command line as the ``kubeha`` console script."""

from kubeha.cli.main import run

if __name__ == "__main__":
    run()
