"""Pure judgements over runs: per-variant figures against float32, and verdicts between two runs."""
