"""Aggregate statistics and plots of runs."""
