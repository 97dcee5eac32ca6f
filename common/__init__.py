"""Plumbing every layer shares: atomic file writes and CLI error handling.

It sits below `models/`, `data/`, `train/`, `tuning/` and `benchmarks/` and
imports none of them, so any of them may use it without reaching upward.
"""
