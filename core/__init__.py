"""plugway: a plugin-based, OpenAI-compatible AI gateway.

Plugins need only ``from plugway import hookimpl`` plus the types their hooks take.
"""

from plugway.context import (
    Attempt,
    FailureAction,
    FailureDecision,
    Price,
    RequestContext,
    Route,
    Target,
)
from plugway.hooks import hookimpl
from plugway.provider import (
    CacheLookup,
    ChunkStream,
    Provider,
    ProviderResponse,
    ProviderSettings,
)

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "CacheLookup",
    "ChunkStream",
    "FailureAction",
    "FailureDecision",
    "Price",
    "Provider",
    "ProviderResponse",
    "ProviderSettings",
    "RequestContext",
    "Route",
    "Target",
    "__version__",
    "hookimpl",
]
