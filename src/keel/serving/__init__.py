"""Serving and deployments: routing policies, fallbacks, the predictor app, the prediction log (issue 7)."""
