"""Evaluation: streaming metrics, evaluating a model on a dataset, the report."""
