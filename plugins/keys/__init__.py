"""Virtual keys: the SQLite key store, authentication on the request path, the admin API
and the ``plugway keys`` commands."""
