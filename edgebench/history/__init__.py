"""Runs over time: the SQLite index over run folders, and finding runs and baselines in it."""
