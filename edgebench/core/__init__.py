"""What every layer shares: user errors, atomic file writes, quiet native stderr, retries, the settings table."""
