"""A minimal client for Prometheus' HTTP query API (``/api/v1/query``), urllib only."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class PrometheusUnavailable(RuntimeError):
    """Prometheus could not be reached or answered something that is not its API."""


class QueryError(ValueError):
    """Prometheus rejected a query (HTTP 400/422: it does not parse or cannot be evaluated)."""

    def __init__(self, expr: str, message: str) -> None:
        self.expr, self.message = expr, message
        super().__init__(f"{message} (query: {expr})")


def query(prometheus_url: str, expr: str, timeout: float = 10.0) -> dict[str, Any]:
    """The ``data`` object of an instant query: ``{"resultType": ..., "result": ...}``."""
    url = prometheus_url.rstrip("/") + "/api/v1/query"
    body = urllib.parse.urlencode({"query": expr}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read().decode("utf-8")).get("error", exc.reason)
        except ValueError:
            detail = exc.reason
        if exc.code in (400, 422):
            raise QueryError(expr, str(detail)) from exc
        raise PrometheusUnavailable(f"Prometheus at {prometheus_url} answered HTTP {exc.code}: {detail}") from exc
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise PrometheusUnavailable(f"cannot query Prometheus at {prometheus_url}: {reason}") from exc
    if payload.get("status") != "success":
        raise QueryError(expr, str(payload.get("error", payload)))
    return payload["data"]


def has_data(data: dict[str, Any]) -> bool:
    """True when an instant-query result holds at least one finite sample."""
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("scalar", "string"):
        samples = [result]
    elif kind == "vector":
        samples = [item.get("value") for item in result or []]
    elif kind == "matrix":
        samples = [v for item in result or [] for v in item.get("values") or []]
    else:
        return False
    for sample in samples:
        try:
            if math.isfinite(float(sample[1])):
                return True
        except (TypeError, ValueError, IndexError):
            continue
    return False
