"""Routing strategies, each a plugin registered through ``register_strategies``."""
