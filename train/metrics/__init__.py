"""Evaluation metrics: classification, summarization and rank correlation.

Plain NumPy, no TensorFlow: each takes predictions and references as arrays
and returns numbers, so reports, export gates and benchmarks share one
definition of every metric.
"""
