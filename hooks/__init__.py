"""plugway's hook markers. Plugins write ``from plugway.hooks import hookimpl``.

The hook specifications, whose docstrings are the contract, live in :mod:`plugway.hooks.hookspecs`.
"""

import pluggy

PROJECT = "plugway"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]
