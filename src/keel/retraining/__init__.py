"""Retraining with human oversight: policies on deployments (when, what data, how), retrains with their evidence,
the feedback-loop guard, and an approver's decision before any canary (DESIGN.md, issue 9)."""

from keel.retraining.conditions import Condition, parse_condition
from keel.retraining.model import Retrain, RetrainPolicy

__all__ = ["Condition", "Retrain", "RetrainPolicy", "parse_condition"]
