"""The other origin the sandbox's redirects point to: a second listener on 127.0.0.1:0.

Guarantees:
- it answers every method and path with the same sign-in page (HTTP 200, HTML), as a captive
  portal or a hijacked redirect would: never the provider's JSON;
- it records every request it gets, with whether it carried the `ailabapi-api-key` header
  (never the key itself), before answering;
- `close()` is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from batchtoon.provider.api import KEY_HEADER
from batchtoon.sandbox.counters import Visit

__all__ = ["Elsewhere"]

SIGN_IN_PAGE = "<html><head><title>Sign in</title></head><body><form>...</form></body></html>"


class Elsewhere:
    def __init__(self, record: Callable[[Visit], None]) -> None:
        self._record = record
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._visit)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _visit(self, request: web.Request) -> web.Response:
        await request.read()  # a redirected POST brings its body: take it, keep nothing
        self._record(Visit(request.method, request.path_qs, KEY_HEADER in request.headers))
        return web.Response(text=SIGN_IN_PAGE, content_type="text/html")
