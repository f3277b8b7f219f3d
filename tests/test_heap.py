"""The worker's garbage-collector settings (plugway.heap), in a fresh interpreter so that the
test process's own collector is left as it is."""

from __future__ import annotations

import json
import subprocess
import sys

from plugway import heap

PROBE = """
import gc, json
from plugway import app, heap
before = (gc.get_freeze_count(), gc.get_threshold())
heap.settle()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(),
                  "threshold": gc.get_threshold()}))
"""


def test_settle_freezes_the_started_heap_and_raises_the_young_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    assert seen["before"][0] == 0
    # the imported gateway (Sanic, aiohttp, httpx, plugway) is out of the collector's sight
    assert seen["frozen"] > 10_000
    assert seen["threshold"][0] == heap.YOUNG_THRESHOLD > seen["before"][1][0]
    assert seen["threshold"][1:] == seen["before"][1][1:]
