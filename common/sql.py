"""SQL script splitting, shared by the box's store and the cloud's SQLite migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator


def sql_statements(sql: str) -> Iterator[str]:
    """Split a migration into statements (sqlite3 runs one per execute; executescript would
    commit the transaction the migration runs in). A trailing incomplete statement fails."""
    buf = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buf.strip()[:80]}")
