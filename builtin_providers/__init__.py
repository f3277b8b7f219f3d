"""Provider plugins shipped with plugway, each registered through ``register_providers``."""
