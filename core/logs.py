"""Log set-up for ``plugway serve``: request records as bare JSON lines, the rest with time
and level. Nothing here formats payloads."""

from __future__ import annotations

import sys
from typing import Any

from loguru import logger


def _format(record: Any) -> str:
    if record["extra"].get("channel") == "request":
        return "{message}\n"
    text = "{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level: <7} {message}\n"
    return text + ("{exception}" if record["exception"] else "")


def configure_logging(level: str = "INFO") -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, format=_format, backtrace=False, diagnose=False)
