"""Records made in the server for the PostgreSQL benches (bench/stats100m.py, bench/partitions.py):
one ``INSERT ... SELECT generate_series`` per chunk, no Python per row.

Each bench chooses its mix of kinds, its boxes and how ts spreads; the payloads are the same
for both (door decisions and methods, plays of 300 content items, portal reading counts, device
health, reports in 10 categories with urgency, alerts by level).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CATS = (
    "ARRAY['facilities_repair', 'environment_sanitation', 'safety_hazard', 'property_service',"
    " 'parking_traffic', 'noise_neighbours', 'policy_enquiry', 'praise', 'suggestion', 'other']"
)

# The payload of each kind, as SQL of g (a number unique across the data set, the seq too) and
# ts; any kind not named here gets an alert's.
PAYLOADS = {
    "access_event": "jsonb_build_object('door_id', 'door-' || (g / 3 % 2 + 1),"
    " 'decision', CASE WHEN g / 7 % 10 < 9 THEN 'granted' ELSE 'denied' END,"
    " 'method', (ARRAY['face', 'card', 'qr', 'remote', 'password'])[g / 11 % 5 + 1])",
    "play_record": "jsonb_build_object('content_id', 'ct-' || (g / 7 % 300),"
    " 'screen_id', 'screen-' || (g / 3 % 2 + 1), 'duration_ms', 5000 + g % 7 * 5000)",
    "reading_stats": "jsonb_build_object('content_id', 'ct-' || (g / 7 % 300),"
    " 'hour', left(ts, 13), 'reads', g % 5 + 1, 'new_readers', g % 3, 'acks', g % 2,"
    " 'dwell_s', g % 600 / 10.0)",
    "device_health": "jsonb_build_object('device_id', 'door-1', 'state', 'online',"
    " 'cpu_pct', g % 100, 'temp_c', 40 + g % 30)",
    "report": "jsonb_build_object('text', '第' || g || '号反映：楼道灯坏了，电梯异响',"
    f" 'category', ({CATS})[g / 7 % 10 + 1], 'sentiment', ((g % 200) - 100) / 100.0,"
    " 'urgency', (ARRAY['immediate', 'high', 'normal', 'low'])[g / 3 % 4 + 1],"
    " 'status', 'received', 'photos', 0)",
    "alert": "jsonb_build_object('level', (ARRAY['critical', 'warning', 'info'])[g / 3 % 3 + 1],"
    " 'type', 'urgent_report', 'message', '紧急反映', 'evidence', '[]'::jsonb)",
}


@dataclass(frozen=True)
class Mix:
    """Kinds by g modulo ``modulus``: (kind, how many of the modulus, priority) in order."""

    modulus: int
    kinds: tuple[tuple[str, int, int], ...]


def generate_sql(mix: Mix, box: str, ts: str) -> str:
    """The INSERT for records g in [$1, $2]; ``box`` and ``ts`` are SQL of g (and of the
    bench's own parameters from $3 on): the box id, and the record's time (timestamptz)."""
    kind_case, pri_case, top = [], [], 0
    for kind, share, pri in mix.kinds:
        top += share
        kind_case.append(f"WHEN g % {mix.modulus} < {top} THEN '{kind}'")
        pri_case.append(f"WHEN g % {mix.modulus} < {top} THEN {pri}")
    assert top == mix.modulus, "the mix must cover the modulus"
    payload = " ".join(f"WHEN '{k}' THEN {PAYLOADS[k]}" for k, _, _ in mix.kinds if k != "alert")
    return f"""
INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload, received_at)
SELECT box, g, pri, kind, 'r' || g, ts,
    jsonb_build_object('schema', 'qilu.v1.' || kind, 'id', 'r' || g, 'ts', ts) || CASE kind
    {payload} ELSE {PAYLOADS["alert"]} END,
    ts
FROM (
    SELECT g, {box} AS box,
        CASE {" ".join(kind_case)} END AS kind,
        CASE {" ".join(pri_case)} END AS pri,
        to_char(({ts}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS ts
    FROM generate_series($1::bigint, $2::bigint) AS g
) s
"""


async def upload_rate(storage: Any, records: int, kinds: list[str], ts: str,
                      seqs: dict[int, int], payload: Callable[[str, int], str]) -> float:
    """``records`` through the real upload path (``storage.upload``): 500-record batches
    from 1,000 boxes in turn, kinds by seq; ``seqs`` carries each box's last seq between
    calls (the benches alternate layouts A B B A on the same boxes). Records per second."""
    t0 = time.perf_counter()
    for i in range(0, records, 500):
        box = (i // 500) % 1000
        rows = []
        for _ in range(500):
            seqs[box] += 1
            k = kinds[seqs[box] % len(kinds)]
            rows.append({"seq": seqs[box], "priority": 1, "kind": k,
                         "record_id": f"r{seqs[box]}", "ts": ts,
                         "payload": payload(k, seqs[box])})  # fmt: skip
        await storage.upload(f"box-{box:04d}", 1, rows)
    return records / (time.perf_counter() - t0)
