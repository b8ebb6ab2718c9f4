"""The provider's JSON envelopes (contract sections 1, 2 and 4) as aiohttp responses."""

from __future__ import annotations

import time
import uuid
from email.utils import formatdate
from typing import Any

from aiohttp import web

__all__ = ["error", "error_body", "http_date", "proxy_page", "success", "success_body"]

PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>"
)


def _ids() -> dict[str, str]:
    return {"request_id": str(uuid.uuid4()), "log_id": uuid.uuid4().hex}


def success_body(**fields: Any) -> dict[str, Any]:
    """The provider's success envelope (contract section 1), `fields` added or replaced."""
    return {
        **_ids(),
        "error_code": 0,
        "error_code_str": "",
        "error_msg": "",
        "error_detail": {"status_code": 200, "code": "", "code_message": "", "message": ""},
        **fields,
    }


def success(**fields: Any) -> web.Response:
    return web.json_response(success_body(**fields))


RetryAfter = float | str | None  # seconds, or a header value sent as it is (an HTTP date)


def http_date(seconds_from_now: float) -> str:
    """`Retry-After` in its HTTP-date form, e.g. `http_date(1e9)`: some thirty years away."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)


def _retry_header(retry_after: RetryAfter) -> dict[str, str] | None:
    if retry_after is None:
        return None
    return {"Retry-After": retry_after if isinstance(retry_after, str) else f"{retry_after:.3f}"}


def proxy_page(status: int, *, retry_after: RetryAfter = None) -> web.Response:
    """What a proxy in front of the API answers: HTML, not the provider's JSON."""
    return web.Response(
        status=status, text=PROXY_PAGE, content_type="text/html", headers=_retry_header(retry_after)
    )


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The provider's error envelope (contract section 4)."""
    return {
        **_ids(),
        "error_code": status,
        "error_code_str": code,
        "error_msg": message,
        "error_detail": {
            "status_code": status,
            "code": code,
            "code_message": message,
            "message": message,
        },
    }


def error(status: int, code: str, message: str, *, retry_after: RetryAfter = None) -> web.Response:
    body = error_body(status, code, message)
    return web.json_response(body, status=status, headers=_retry_header(retry_after))
