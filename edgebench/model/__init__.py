"""What a run measures, before any variant exists: a float model, its TFLite file described and checked, its data."""
