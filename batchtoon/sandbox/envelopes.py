"""The provider's JSON envelopes (contract sections 1, 2 and 4) as aiohttp responses."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

__all__ = ["error", "error_body", "proxy_page", "success"]

PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>"
)


def _ids() -> dict[str, str]:
    return {"request_id": str(uuid.uuid4()), "log_id": uuid.uuid4().hex}


def success(**fields: Any) -> web.Response:
    body = {
        **_ids(),
        "error_code": 0,
        "error_code_str": "",
        "error_msg": "",
        "error_detail": {"status_code": 200, "code": "", "code_message": "", "message": ""},
        **fields,
    }
    return web.json_response(body)


def _retry_header(retry_after: float | None) -> dict[str, str] | None:
    return {"Retry-After": f"{retry_after:.3f}"} if retry_after is not None else None


def proxy_page(status: int, *, retry_after: float | None = None) -> web.Response:
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


def error(
    status: int, code: str, message: str, *, retry_after: float | None = None
) -> web.Response:
    body = error_body(status, code, message)
    return web.json_response(body, status=status, headers=_retry_header(retry_after))
