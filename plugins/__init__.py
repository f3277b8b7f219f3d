"""plugway's first-party plugins: routing strategies, the failure policy, loggers."""
