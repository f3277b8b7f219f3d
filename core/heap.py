"""The garbage collector's settings for a serving worker.

A gateway makes almost no reference cycles: memory is freed by reference counting, and the
cyclic collector finds next to nothing (measured: ~600 objects over 10,000 requests). Yet with
CPython's defaults it ran a young collection every ~8 requests at 64 in flight (the objects of
the requests in flight alone exceed the 700-allocation threshold) and a full one every ~900,
each full pass walking the ~60,000 objects of the imported modules and the config: 10% of the
worker's CPU, and 30 ms pauses for every open stream.

:func:`settle` runs once the worker has started, before it serves: one full collection, then
``gc.freeze()`` moves every surviving object (modules, config, plugins, pools) out of the
collector's sight, and the young generation's threshold is raised so that a collection waits
for real growth rather than for the requests in flight.
"""

from __future__ import annotations

import gc

#: Net container allocations before a young collection (CPython's default is 700).
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect once, freeze what survives, raise the young threshold (see the module doc)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
