"""The feature store: entities, feature views, point-in-time training sets, the online store."""
