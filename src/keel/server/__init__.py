"""The keel server: the REST API under /api/v1 (and, later, the web UI) over one workspace."""
