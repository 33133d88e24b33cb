"""What every layer shares: user errors, atomic file writes, quiet native stderr, the settings table."""
