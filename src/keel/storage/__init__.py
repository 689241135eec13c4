"""Infrastructure: metadata DB, Delta tables, artifacts, online stores. No domain rules."""
