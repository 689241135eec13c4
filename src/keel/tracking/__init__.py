"""Experiment tracking: runs, params, metrics, artifacts, environment capture (issue 3, in progress)."""
