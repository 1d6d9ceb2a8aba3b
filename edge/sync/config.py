"""The ``[sync]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class SyncConfig(Section):
    """``[sync]``: the cloud sync client (edge/sync/, docs/sync.md)."""

    enabled: bool = True  # runs only once the box is provisioned (identity file present)
    identity_file: str = "cloud-identity.json"  # relative to box.data_dir; mode 0600
    batch_max_records: int = Field(5000, ge=1, le=20000)  # batches grow up to this
    batch_max_kb: int = Field(4096, ge=1)  # uncompressed cap; lower it on a slow link
    backoff_min_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    # The feed long-poll and the relay socket retry sooner than uploads: a box backing off
    # after an error misses nothing (the feed keeps the item for its cursor), but with a 60 s
    # cap it heard a city-wide emergency up to a minute late, and its residents' pages stayed
    # offline as long after a cloud worker died (docs/deploy.md). Never above backoff_max_s.
    feed_backoff_max_s: float = Field(5.0, gt=0, le=60)
    request_timeout_s: float = Field(30.0, gt=0)
    feed_wait_s: float = Field(25.0, ge=0, le=60)  # long-poll length
    heartbeat_s: float = Field(60.0, gt=0)
    outbox_budget_mb: float = Field(512.0, gt=0)  # over it, telemetry is dropped oldest-first
    budget_warn: float = Field(0.8, gt=0, lt=1)  # warning Alert at this fraction
    tls_verify: bool = True
    ca_file: str | None = None  # extra CA for a private cloud certificate
    # The cloud's ``update`` command (console roll-outs in waves, docs/console.md) runs this
    # with the version as its last argument (and QILU_UPDATE_VERSION / _URL / _SHA256 in its
    # environment): it installs that version and restarts the daemon, which then reports it
    # in its heartbeat. Unset: the box refuses updates, saying so (the roll-out pauses).
    update_command: str | None = Field(None, min_length=1, max_length=1000)
    update_timeout_s: float = Field(900.0, gt=0, le=3 * 3600)
