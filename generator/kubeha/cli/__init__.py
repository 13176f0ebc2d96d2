"""The ``kubeha`` command line (Typer): one module per command group, each a thin layer over the library."""
