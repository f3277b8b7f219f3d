"""The response cache: the ``cache`` plugin (exact match) and its parts.

:mod:`.settings` reads ``[plugins.cache]``, :mod:`.keying` makes the key and reads the request's
cache controls, :mod:`.stores` holds entries (in-process LRU or the gateway's state backend),
:mod:`.replay` answers from an entry and records streams, :mod:`.plugin` wires the hooks.
"""
