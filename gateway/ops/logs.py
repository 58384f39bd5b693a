"""Process logging: text (default) or JSON lines (`LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import logging
import time

from aiohttp.http import HttpProcessingError

# aiohttp's server logger: it logs each request it cannot parse (garbage request line, bad
# header, header line too long, bad chunked body, ...) at ERROR with a traceback
AIOHTTP_SERVER_LOGGER = "aiohttp.server"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, node_id (+ exc_info)."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "node_id": self.node_id,
        }
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's record of a request it could not parse (an `HttpProcessingError`:
    the client's fault, answered 400 by aiohttp) into one DEBUG line without a traceback,
    dropped unless DEBUG is enabled for the logger. Any other record passes unchanged, so a
    failure of the server itself still logs at ERROR with its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        first_line = (str(exc.message) or "").strip().splitlines()[:1]
        record.args = (record.getMessage(), exc.code, first_line[0] if first_line else "")
        record.msg = "%s: %s %s"
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_malformed_requests(logger: logging.Logger | None = None) -> MalformedRequestFilter:
    """Install `MalformedRequestFilter` on aiohttp's server logger (once): the filter in use."""
    target = logger or logging.getLogger(AIOHTTP_SERVER_LOGGER)
    for f in target.filters:
        if isinstance(f, MalformedRequestFilter):
            return f
    flt = MalformedRequestFilter()
    target.addFilter(flt)
    return flt


def setup_logging(log_format: str, node_id: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(node_id))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_malformed_requests()
    # the websockets library's protocol logs every connection's end at INFO: not news here
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))
