"""The ``keel`` command line: a thin adapter over the workspace services (one module per group)."""
