"""Farms across labs: a Redis queue, one worker per lab host, submit, status and collect."""
