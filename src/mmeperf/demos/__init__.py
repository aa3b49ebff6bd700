"""The reference workflows, end to end: ``churn`` (CPU MME, XGBoost) and ``formats`` (model formats)."""
