"""Monitoring: reference sketches, drift, labels, performance, alerts and reports."""
