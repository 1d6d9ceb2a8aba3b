"""Boxes' uploads: records stored once, in order, acked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloudsync.storage.base import NONCE_INSERT, Conn, Replayed, StorageBase, prune_nonces, utcnow
from common.protocol import UploadRecord


class RecordStorage(StorageBase):
    # --- upload ---------------------------------------------------------------------------

    async def upload(
        self,
        box_id: str,
        floor: int,
        rows: Sequence[UploadRecord],
        nonce: tuple[str, str, int, int] | None = None,
    ) -> tuple[int, int, int]:
        """Store a batch once per (box, seq) in one transaction; (stored, dupes, acked).
        ``nonce`` (box_id, nonce, ts, older_than) is used in the same transaction: Replayed
        if it was seen, and then nothing is stored."""
        now = utcnow()
        async with self.tx() as c:
            box = await self.lock_box(c, box_id, nonce)
            stored = await c.insert_records(box_id, now, rows) if rows else 0
            # Invariant: after every upload acked_seq is the highest contiguous seq, so it can
            # move only if this batch holds acked_seq + 1 or the box's floor lifts it.
            before = box["acked_seq"]  # type: ignore[index]
            acked = max(before, floor - 1)
            seqs = sorted(r["seq"] for r in rows)
            # max_seq: the highest seq stored for the box (every seq of this batch is stored
            # now, new or duplicate). Only when it lies above the watermark can a walk over
            # stored seqs move it further: the in-order case needs no walk query.
            top = max(box["max_seq"], seqs[-1] if seqs else 0)  # type: ignore[index]
            if acked > before or (seqs and acked + 1 in set(seqs)):
                if seqs and seqs[0] == acked + 1 and seqs[-1] - seqs[0] == len(seqs) - 1:
                    acked = seqs[-1]  # the common case: the batch continues the watermark
                if acked < top:
                    acked = await self._walk(c, box_id, acked)
            await c.execute(
                "UPDATE boxes SET acked_seq = $1, max_seq = $2, last_seen_at = $3 WHERE id = $4",
                acked,
                top,
                now,
                box_id,
            )
        return stored, len(rows) - stored, acked

    async def lock_box(
        self, c: Conn, box_id: str, nonce: tuple[str, str, int, int] | None
    ) -> dict[str, Any]:
        """Use the request's nonce (Replayed if seen) and lock the box's row: uploads of one
        box serialise (also across workers), others don't. (PostgreSQL: one round trip.)"""
        if nonce is not None:
            if await c.execute(NONCE_INSERT, *nonce[:3]) != 1:
                raise Replayed("nonce already used")
            await prune_nonces(c, nonce[2], nonce[3])
        return await c.fetchrow(  # type: ignore[return-value]
            "SELECT acked_seq, max_seq FROM boxes WHERE id = $1" + self.for_update(), box_id
        )

    async def _walk(self, c: Conn, box_id: str, acked: int) -> int:
        """Advance the watermark over seqs already stored above it."""
        while True:
            nxt = await c.fetch(
                "SELECT seq FROM records WHERE box_id = $1 AND seq > $2 ORDER BY seq LIMIT 2000",
                box_id,
                acked,
            )
            moved = 0
            for r in nxt:
                if r["seq"] != acked + 1:
                    return acked
                acked += 1
                moved += 1
            if moved < 2000:
                return acked

    def for_update(self) -> str:
        return ""

    async def box_records(self, box_id: str) -> list[dict[str, Any]]:
        async with self.tx() as c:
            return await c.fetch(
                "SELECT seq, kind, record_id, priority FROM records WHERE box_id = $1 ORDER BY seq",
                box_id,
            )
