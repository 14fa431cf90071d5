"""The one JSON reader for untrusted bodies, shared by the service and the terminal agent:
bounded in size and nesting depth (counted by a linear scan before any parsing, so the parser
never recurses deeply), strict UTF-8, no duplicate keys, no NaN or Infinity. A refused body is
answered 400 `invalid_json` with one short log line, never a 500 or a traceback."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.wrappers import Response

from authsvc.domain.messages import text

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32
# A string (escapes included; unterminated: to the end, where json.loads stops anyway, so
# that a failed match is never retried from each later quote) or one bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
log = logging.getLogger(__name__)


class InvalidJSON(ValueError):
    """A body refused by `parse`; `code` says why in a word (too_large, too_deep, ...)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def depth(doc: str) -> int:
    """The deepest nesting of arrays and objects in `doc`; brackets inside strings do not count."""
    level = deepest = 0
    for token in _TOKEN.finditer(doc):
        mark = token.group()
        if mark in "[{":
            level += 1
            deepest = max(deepest, level)
        elif mark in "]}":
            level -= 1
    return deepest


def _finite(number: str) -> float:
    value = float(number)  # NaN, Infinity, and 1e999 (which float() makes infinite) refused
    if not math.isfinite(value):
        raise InvalidJSON("non_finite")
    return value


def parse(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
          object_hook: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """The JSON value of `data`, or InvalidJSON: over `max_bytes`, not UTF-8, nested deeper
    than `max_depth`, a key twice in one object, NaN/Infinity, or not JSON at all."""
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if len(raw) > max_bytes:
            raise InvalidJSON("too_large")
        doc = raw.decode("utf-8")
    except UnicodeError:
        raise InvalidJSON("not_utf8") from None
    if depth(doc) > max_depth:
        raise InvalidJSON("too_deep")

    def pairs(items: list[tuple[str, Any]]) -> Any:
        obj = dict(items)
        if len(obj) != len(items):
            raise InvalidJSON("duplicate_key")
        return object_hook(obj) if object_hook else obj

    try:
        value = json.loads(doc, object_pairs_hook=pairs, parse_constant=_finite,
                           parse_float=_finite)
        json.dumps(value, ensure_ascii=False, default=repr).encode("utf-8")  # "\ud800": not text
    except InvalidJSON:
        raise
    except UnicodeError:
        raise InvalidJSON("not_utf8") from None
    except (ValueError, RecursionError):  # no RecursionError below a sane max_depth
        raise InvalidJSON("not_json") from None
    return value


def json_body() -> dict[str, Any]:
    """The request's JSON object: {} when no JSON was sent (no body, or not a JSON content
    type), InvalidJSON (answered 400 by `install`) when the body is not one acceptable object."""
    if not request.is_json:
        return {}
    data = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413
    if not data.strip():
        return {}
    value = parse(data)
    if not isinstance(value, dict):
        raise InvalidJSON("not_object")
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """`request.get_json()` and `current_app.json.loads` under the same rules as `parse`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return parse(s, **kwargs)


def install(app: Flask) -> None:
    """Bound every JSON parse of `app` and answer a refused body 400 `invalid_json`."""
    app.json = StrictJSONProvider(app)

    @app.errorhandler(InvalidJSON)
    def _invalid(exc: InvalidJSON) -> tuple[Response, int]:
        log.warning("refused JSON body (%s) at %s", exc.code, request.endpoint)  # nothing sent
        return jsonify(error="invalid_json", message=text("invalid_json", getattr(g, "lang", "ja"))), 400
