"""The `edgebench` command: parses arguments, calls the work, renders what comes back. The only layer that prints."""
