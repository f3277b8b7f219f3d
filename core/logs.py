"""Log set-up for ``plugway serve``: request records as bare JSON lines, the rest with time
and level. Nothing here formats payloads; every line is redacted (:mod:`plugway.redact`)."""

from __future__ import annotations

import sys
from typing import Any

from loguru import logger
from plugway.redact import RedactingSink, install_logging_filter


def _format(record: Any) -> str:
    if record["extra"].get("channel") == "request":
        return "{message}\n"
    text = "{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level: <7} {message}\n"
    return text + ("{exception}" if record["exception"] else "")


def configure_logging(level: str = "INFO") -> None:
    logger.remove()
    # Every line goes through redaction (credentials never reach the log), Sanic's too.
    logger.add(
        RedactingSink(sys.stderr),
        level=level,
        format=_format,
        backtrace=False,
        diagnose=False,
        colorize=False,
    )
    install_logging_filter()
