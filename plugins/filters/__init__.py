"""Security filters: ``pii``, ``secrets`` and ``prompt_guard``, each a plugin on the request,
response and stream hooks. They fail closed: an error inside a filter refuses the request."""
