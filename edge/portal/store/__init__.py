"""The resident portal's SQL (issue 9): logins, reads, acknowledgements, events, boards, counts.

Each function takes the :class:`Store` and runs on the store thread (``await
box.store.run(portal.fn, box.store.sync, ...)``). Secrets are stored only as hashes: login
codes keyed with the box key (:func:`code_hash`), session tokens as SHA-256. Reads and
acknowledgements stay on the box; what leaves it is :class:`ReadingStats` counts, emitted in
the same transaction that marks the rows counted, so every read reaches the outbox exactly
once.

One module per domain: ``logins``, ``reading``, ``events``, ``board``; ``base`` holds the shared
helpers.
"""

from __future__ import annotations

from edge.portal.store.base import PortalError, code_hash, digest
from edge.portal.store.board import add_post, flag_post, flagged_posts, list_posts, moderate_post
from edge.portal.store.events import (
    cancel_signup,
    credit_attendance,
    list_events,
    put_event,
    sign_up,
    volunteer_hours,
)
from edge.portal.store.logins import (
    add_code,
    get_resident,
    has_live_session,
    issue_code,
    list_sessions,
    live_code,
    new_code,
    redeem_code,
    revoke_sessions,
    session_for,
    set_big_text,
    spend_code,
    upsert_resident,
)
from edge.portal.store.reading import (
    content_item,
    flush_stats,
    history,
    local_stats,
    phone_content,
    read_log,
    record_ack,
    record_dwell,
    record_read,
)

__all__ = [
    "PortalError",
    "add_code",
    "add_post",
    "cancel_signup",
    "code_hash",
    "content_item",
    "credit_attendance",
    "digest",
    "flag_post",
    "flagged_posts",
    "flush_stats",
    "get_resident",
    "has_live_session",
    "history",
    "issue_code",
    "list_events",
    "list_posts",
    "list_sessions",
    "live_code",
    "local_stats",
    "moderate_post",
    "new_code",
    "phone_content",
    "put_event",
    "read_log",
    "record_ack",
    "record_dwell",
    "record_read",
    "redeem_code",
    "revoke_sessions",
    "session_for",
    "set_big_text",
    "sign_up",
    "spend_code",
    "upsert_resident",
    "volunteer_hours",
]
