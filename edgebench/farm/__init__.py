"""The device farm: one farm file, every device measured in parallel, one answer for the night.

config.py reads the farm file; scheduler.py runs one worker per device; quarantine.py
keeps which devices are out of service; summary.py turns the night's runs into the farm
summary (schema-versioned JSON) and its verdict.
"""
