"""The demo scenario and its synthetic data."""
