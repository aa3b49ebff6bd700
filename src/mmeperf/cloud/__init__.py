"""AWS helpers for the SageMaker endpoint: clients and errors, CloudWatch, dashboards, autoscaling.

Every module here imports boto3 lazily (inside functions), so importing them touches nothing.
"""
