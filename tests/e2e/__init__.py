"""Whole loops: the demo story and the web UI driven by a real browser."""
