"""A client that leaves in the middle of its request is not an error of ours.

aiohttp does not cancel a handler when its client goes away (handler_cancellation is off, the
default): the next read of the body or write of the answer raises ConnectionResetError
("Connection lost", "Cannot write to closing transport"), and aiohttp logs that as
"Error handling request" with a full traceback. Boxes cut long-polls and uploads on flaky
links and browsers close pages all day, so both web servers (the box's and the cloud's) put
:func:`client_gone` outermost: one INFO line naming the request instead. The same error while
the client is still connected (a database or relay socket of ours) is re-raised and keeps its
traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)
# nginx's "client closed request": written in the audit logs, never seen by the client.
CLIENT_LEFT = 499


def client_left(request: web.Request) -> bool:
    """The client's connection is closed or closing (aiohttp drops the transport on loss)."""
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def client_gone(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.monotonic()
    try:
        return await handler(request)
    except OSError as e:  # ConnectionResetError is an OSError, so are aiohttp's own kinds
        if not client_left(request):
            raise
        log.info(
            "client left during %s %s (from %s, after %.1f s: %s)",
            request.method,
            request.path,
            request.remote,
            time.monotonic() - started,
            e,
        )
        # Nobody reads this answer: aiohttp's write of it fails quietly (finish_response).
        return web.Response(status=CLIENT_LEFT)
