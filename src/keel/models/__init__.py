"""Model packages (flavors, signatures, safe formats) and the registry (versions, aliases, approvals)."""
