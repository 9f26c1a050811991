"""Request ids: one per request, from the client's `x-request-id` (REST header or gRPC
metadata) or made here, carried in a context variable so every log line of the request names it,
and given back (REST response header, gRPC trailing metadata). Transport-free: the bridge and
the gRPC server both use it."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid

HEADER = "x-request-id"
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# What a client's id may be: printable, and short enough for a log line and a header.
_ACCEPTABLE = re.compile(r"^[\x21-\x7e]{1,128}$")


def chosen(given: str | None) -> str:
    """The client's id when it is usable, else a new one."""
    return given if given and _ACCEPTABLE.fullmatch(given) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Gives each record the request id of the context it was logged in, unless the code that
    logged it passed one (the engine thread logs for requests it does not run the context of)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line (--log-format json), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        text = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
        handler.setFormatter(logging.Formatter(text))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
