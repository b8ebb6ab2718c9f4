"""The provider's JSON envelopes (contract sections 1, 2 and 4) as aiohttp responses."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

__all__ = ["PROXY_PAGE", "error", "success"]

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


def error(
    status: int, code: str, message: str, *, retry_after: float | None = None
) -> web.Response:
    body = {
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
    headers = {"Retry-After": f"{retry_after:.3f}"} if retry_after is not None else None
    return web.json_response(body, status=status, headers=headers)
