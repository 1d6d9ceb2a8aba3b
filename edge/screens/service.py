"""The screens service: keeps every player page told what to play, caches content, records
proof of play, watches players and displays, and starts emergency broadcasts.

Decisions come from :mod:`edge.screens.resolver` only; this module loads its inputs from the
store, turns its segments into the JSON a player page cycles through, and pushes that over a
WebSocket whenever anything changes (an emergency reaches the page in one push, no polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import secrets
import time as _time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import ValidationError

from drivers.screens.base import DisplayDriver, display_target
from edge.core.box import Box
from edge.core.commands import CommandError
from edge.core.service import Service, Supervisor
from edge.core.standard import (
    Command,
    ContentItem,
    DeviceHealth,
    Emergency,
    Playlist,
    PlayRecord,
    Record,
    ScheduleEntry,
    Screen,
    StandardError,
    new_id,
    parse_payload,
)
from edge.devices import DEVICES
from edge.screens import layouts, resolver
from edge.screens import store as db
from edge.screens.cache import CacheError, ContentCache
from edge.screens.config import ScreensConfig
from edge.screens.resolver import Catalog, ScreenRef
from edge.sync import SYNC

log = logging.getLogger(__name__)
EMERGENCY_HORIZON_MAX = timedelta(days=14)  # a plan reaches at most this past plan_hours
REFRESH_S = 600  # re-push plans this often so a page's horizon never runs short
MAX_PLAYS = 500  # play records per request (the page sends 200 at a time)
PLAYS_MAX_BYTES = 512 * 1024  # one plays request or WebSocket message
CLOCK_SKEW = timedelta(minutes=5)  # a play may end this far in the box's future


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Panel:
    """Another feature's panel on a screen's player page, beside the content (e.g. the
    intercom's call panel on a door's screen): its markup (trusted, the feature's own static
    file), scripts and style sheets, which the page shell includes. The panel's script runs
    after the player's and may read ``window.qiluPlayer`` (the screen id and its key).
    ``zone=False``: a panel that takes no zone of the layout and draws over the page only
    while it has something to say (e.g. the second-factor keypad of a face door)."""

    html: str
    scripts: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    zone: bool = True


Span = tuple[datetime, datetime, frozenset[str]]  # (start, end, content ids)


class ScreenRefused(Exception):
    """A request that is not from a door's screen: HTTP status, message naming the field."""

    def __init__(self, status: int, message: str, field: str) -> None:
        super().__init__(message)
        self.status, self.field = status, field


class PlaysRefused(ValueError):
    """A whole plays request refused (too many records)."""


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def parse_record(cls: type[Record], data: Any) -> Any:
    """A standard payload (with or without its ``schema``) as ``cls``; errors name the field."""
    if not isinstance(data, dict):
        raise StandardError(f"{cls.KIND}: expected a JSON object")
    if "schema" in data:
        rec = parse_payload(data)
        if not isinstance(rec, cls):
            raise StandardError(f"schema: expected {cls.schema_id()}, got {data['schema']}")
        return rec
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(payload)"
        raise StandardError(f"{cls.KIND}: {field}: {err['msg']}") from e


class ScreensService(Service):
    name = "screens"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        cfg = self.cfg = box.config.section(ScreensConfig)
        self.tz = ZoneInfo(box.config.box.timezone)
        self.cache = ContentCache(
            box.config.box.data_dir / cfg.cache_dir, box.store, int(cfg.cache_budget_mb * 2**20)
        )
        self.sockets: dict[str, set[web.WebSocketResponse]] = {}
        self.last_seen: dict[str, float] = {}  # screen id -> monotonic time of last message
        self.origins: dict[str, str] = {}  # screen id -> the box address its page was opened at
        self.download_errors: dict[str, str] = {}
        self._catalog: Catalog | None = None
        self._screens: dict[str, ScreenRef] = {}
        self._supervisor = Supervisor("screens", 0.5, 30.0)  # its background loops
        self._wake_downloads = asyncio.Event()
        self._wake_alerts = asyncio.Event()
        self._pending_alarm: Emergency | None = None  # an alarm whose broadcast failed to store
        self._pending_alarm_for: int | None = None  # ... and its event id
        self._started = _time.monotonic()
        self._applied: dict[str, tuple[bool, int | None]] = {}
        self._key_hashes: dict[str, str] = {}  # screen id -> SHA-256 of its device key
        # What each screen was told to play (plans sent, until the next one replaced them):
        # screen id -> (source, anchor) -> (start, end, content ids). A play cut short by a
        # change (a new schedule, a finished download) was of the old plan, which the current
        # definitions no longer show for that time.
        self._told: dict[str, dict[tuple[str, datetime], Span]] = {}
        self.panels: dict[str, list[Panel]] = {}  # screen id -> features' panels on its page
        for action, handler in (
            ("content", self._cmd_content),
            ("playlist", self._cmd_playlist),
            ("schedule", self._cmd_schedule),
            ("emergency", self._cmd_emergency),
            ("emergency_cancel", self._cmd_emergency_cancel),
        ):
            box.commands.register("box", action, handler)

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._alert_cursor = await self.box.store.last_event_id()
        self._key_hashes = await self.box.store.run(db.screen_keys, self.box.store.sync)
        self.box.store.sync.on_commit(lambda: loop.call_soon_threadsafe(self._wake_alerts.set))
        await self.catalog()
        # Supervised: a loop ending on an error it did not expect (a full disk, a locked or
        # broken database) is logged and restarted with back-off; the alarm watch dying
        # meant every later fire alarm missed the screens.
        for fn in (self._verify_then_download, self._liveness, self._displays, self._alerts,
                   self._refresh):
            self._supervisor.spawn(fn, f"screens-{fn.__name__.strip('_')}")

    async def stop(self) -> None:
        await self._supervisor.stop()
        for socks in list(self.sockets.values()):
            for ws in list(socks):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 0.5)

    def status(self) -> dict[str, Any]:
        return {
            "screens": sorted(self._screens),
            "connected": {k: len(v) for k, v in self.sockets.items() if v},
            "download_errors": dict(self.download_errors),
        }

    # --- the catalog and plans ------------------------------------------------------------------

    async def catalog(self) -> Catalog:
        if self._catalog is None:
            now = datetime.now(UTC)
            # Emergencies ended as long ago as a play may be reported (plays_max_age_days):
            # a screen back from days offline reports the emergency it showed meanwhile.
            d = await self.box.store.run(
                db.load_definitions, self.box.store.sync,
                now - timedelta(days=self.cfg.plays_max_age_days),
            )  # fmt: skip
            items = {i.id: i for i in d.items}
            ready = frozenset(
                i.id for i in d.items if i.kind in resolver.FILE_KINDS and i.sha256 in d.cached
            )
            self._catalog = Catalog(
                self.tz,
                items,
                {p.id: p for p in d.playlists},
                d.schedules,
                d.emergencies,
                ready,
            )
            screens = {s.id: ScreenRef(s.id, tuple(s.tags)) for s in d.screens}
            for s in self.box.config.screens:
                screens[s.id] = ScreenRef(s.id, tuple(s.tags))
            self._screens = screens
        return self._catalog

    def screen(self, screen_id: str) -> ScreenRef | None:
        return self._screens.get(screen_id)

    async def changed(self) -> None:
        """Definitions or the cache changed: rebuild the catalog and tell every page."""
        self._catalog = None
        await self.catalog()
        await asyncio.gather(*(self.push(sid) for sid in list(self.sockets)))

    async def plan_json(self, screen_id: str) -> dict[str, Any]:
        cat = await self.catalog()
        ref = self._screens[screen_id]
        now = datetime.now(UTC)
        segs = resolver.plan(cat, ref, now - timedelta(seconds=5), self._horizon(cat, ref, now))
        self._remember(screen_id, segs, now)
        content: dict[str, Any] = {}
        ems = {e.id: e for e in cat.emergencies}
        for seg in segs:
            for cid, _ in seg.items:
                if cid in content:
                    continue
                if cid == resolver.DEFAULT_ID:
                    content[cid] = {
                        "kind": "html",
                        "title": self.cfg.default_title or self.box.config.box.name,
                        "body": self.cfg.default_body,
                    }
                elif cid in ems and seg.source == f"emergency:{cid}":
                    e = ems[cid]
                    content[cid] = {
                        "kind": "html",
                        "title": e.title,
                        "body": e.body,
                        "emergency": e.level,
                        "office": self.office(e),
                        "ends_at": _ms(e.expires_at),
                    }
                else:
                    it = cat.items[cid]
                    content[cid] = {
                        "kind": it.kind,
                        "title": it.title,
                        "body": it.body or "",
                        "url": it.url if it.kind == "url" else None,
                        "src": f"/screen/content/{it.sha256}"
                        if it.sha256 and it.kind in resolver.FILE_KINDS
                        else None,
                        "mime": it.mime,
                    }
        segments = [
            {
                "start": _ms(s.start),
                "end": _ms(s.end),
                "source": s.source,
                "anchor": _ms(s.anchor),
                "items": [list(i) for i in s.items],
                "layout": s.layout,  # a schedule entry's own layout; None: the screen's
                # An emergency's level on its segment, not on its content: an item the schedule
                # also plays looks like an emergency only while the emergency shows it.
                "emergency": next(
                    (e.level for e in ems.values() if s.source == f"emergency:{e.id}"), None
                ),
                # when the emergency ends (a page offline past its plan never plays it later)
                "until": next(
                    (
                        _ms(min(e.expires_at, e.cancelled_at or e.expires_at))
                        for e in ems.values()
                        if s.source == f"emergency:{e.id}"
                    ),
                    None,
                ),
            }
            for s in segs
        ]
        body = {
            "screen": screen_id,
            "segments": segments,
            "content": content,
            "layout": self.layout(
                screen_id, content, frozenset(s.layout for s in segs if s.layout)
            ),
        }
        version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return {**body, "version": version, "server_now": _ms(now)}

    def _horizon(self, cat: Catalog, ref: ScreenRef, now: datetime) -> datetime:
        """How far a plan reaches: ``plan_hours``, or past the end of an emergency that runs
        beyond it (at most EMERGENCY_HORIZON_MAX later). A page offline past its plan keeps
        cycling the plan's last segment: when that was an emergency longer than the horizon,
        an offline screen replayed it for ever after it had expired."""
        hi = now + timedelta(hours=self.cfg.plan_hours)
        cap = hi + EMERGENCY_HORIZON_MAX
        for _ in range(len(cat.emergencies)):
            ends = [
                stop
                for e in cat.emergencies
                if resolver.targets(e.screens, e.tags, ref)
                and e.starts_at <= hi < (stop := min(e.expires_at, e.cancelled_at or e.expires_at))
            ]
            if not ends or hi >= cap:
                break
            hi = min(max(ends) + timedelta(minutes=1), cap)
        return hi

    def office(self, e: Emergency) -> str:
        """Who issued an emergency, as the screen names it."""
        if e.source == "cloud":
            return "上级应急管理部门"
        return self.cfg.emergency_office or f"{self.box.config.box.name or '小区'}物业服务中心"

    def layout(
        self, screen_id: str, content: dict[str, Any], scheduled: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The page's zones. ``scheduled``: layouts schedule entries in the plan ask for (they
        win over the screen's while they play), so their zones' data is sent too."""
        dev = next((s for s in self.box.config.screens if s.id == screen_id), None)
        name = (dev.layout if dev is not None else None) or self.cfg.layout
        times = [
            {"start": t.start, "end": t.end, "name": t.layout}
            for t in self.cfg.layout_times
            if not t.screens or screen_id in t.screens
        ]
        side = name == "side" or "side" in scheduled or any(t["name"] == "side" for t in times)
        box = self.box.config.box
        qr = None
        if side and self.cfg.side_qr_url:
            from edge.core.qr import qr_svg

            qr = qr_svg(self.cfg.side_qr_url)
        path = box.data_dir / self.cfg.weather_file if self.cfg.weather_file else None
        return layouts.layout_json(
            name, community=box.name or box.community, tz=box.timezone, content=content,
            default_id=resolver.DEFAULT_ID, qr_svg=qr, qr_caption=self.cfg.side_qr_caption,
            weather_now=layouts.weather(path) if side else None, times=times,
            also=scheduled,
        )  # fmt: skip

    async def push(self, screen_id: str) -> None:
        if not self.connected(screen_id) or screen_id not in self._screens:
            return
        await self._send(screen_id, {"type": "plan", "plan": await self.plan_json(screen_id)})

    async def _send(self, screen_id: str, message: dict[str, Any]) -> int:
        """Send one message to every open page of a screen; how many it reached."""
        msg = json.dumps(message, ensure_ascii=False)
        sent = 0
        for ws in list(self.sockets.get(screen_id, ())):
            with contextlib.suppress(Exception):
                await ws.send_str(msg)
                sent += 1
        return sent

    def connected(self, screen_id: str) -> bool:
        return bool(self.sockets.get(screen_id))

    async def overlay(self, screen_id: str, overlay: dict[str, Any]) -> int:
        """Show ``overlay`` over what plays (e.g. a login code) on the open pages of a screen.

        Sent once over the pages' WebSocket, never stored or journalled: a page that connects
        later does not get it. Returns how many pages it was sent to.
        """
        return await self._send(screen_id, {"type": "overlay", "overlay": overlay})

    def add_panel(self, screen_id: str, panel: Panel) -> None:
        """Show ``panel`` on the player page of ``screen_id`` (one zone panel per screen,
        any number of ``zone=False`` ones)."""
        mine = self.panels.setdefault(screen_id, [])
        if panel.zone:
            mine[:] = [p for p in mine if not p.zone]
        mine.append(panel)

    # --- device keys ---------------------------------------------------------------------------

    def key_ok(self, screen_id: str, key: str | None) -> bool:
        """Is ``key`` the provisioned device key of this screen?"""
        want = self._key_hashes.get(screen_id)
        return bool(key) and want is not None and hmac.compare_digest(key_hash(key or ""), want)

    def door_of(self, screen_id: str, key: str | None) -> str:
        """The door of a door screen (``[[screens]] door``) presenting its device key, for the
        features' panels on it; ScreenRefused (404 / 401 / 409) otherwise."""
        cfg = next((s for s in self.box.config.screens if s.id == screen_id), None)
        if cfg is None:
            raise ScreenRefused(404, f"screen_id: unknown screen {screen_id!r}", "screen_id")
        if not self.key_ok(screen_id, key):
            raise ScreenRefused(401, f"key: {'wrong' if key else 'missing'} screen key; staff"
                                f" provision one with `qilu-edge screens key {screen_id}`", "key")
        if cfg.door is None:
            raise ScreenRefused(409, f"screen_id: screen {screen_id!r} is not bound to a door"
                                " ([[screens]] door = ...)", "screen_id")
        return cfg.door

    def has_key(self, screen_id: str) -> bool:
        return screen_id in self._key_hashes

    async def new_key(self, screen_id: str, by: str | None) -> str:
        """A fresh device key for the screen (shown once; only its hash is kept). The old
        key, if any, stops working and the pages using it are disconnected."""
        key = secrets.token_urlsafe(24)
        await self.box.store.run(db.set_screen_key, self.box.store.sync, screen_id,
                                 key_hash(key), by)  # fmt: skip
        self._key_hashes[screen_id] = key_hash(key)
        await self._disconnect(screen_id)
        return key

    async def revoke_key(self, screen_id: str) -> bool:
        gone = await self.box.store.run(db.delete_screen_key, self.box.store.sync, screen_id)
        self._key_hashes.pop(screen_id, None)
        await self._disconnect(screen_id)
        return gone

    async def _disconnect(self, screen_id: str) -> None:
        for ws in list(self.sockets.pop(screen_id, ())):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=4401, message=b"screen key changed"), 1.0)

    # --- proof of play ---------------------------------------------------------------------------

    def _remember(self, screen_id: str, segs: list[resolver.Segment], now: datetime) -> None:
        """Note the plan a screen is told: the previous one held until now."""
        told = self._told.setdefault(screen_id, {})
        oldest = now - timedelta(days=self.cfg.plays_max_age_days)
        for k, (a, b, ids) in list(told.items()):
            if b < oldest:
                del told[k]
            elif b > now:
                told[k] = (a, max(a, now), ids)
        for g in segs:
            ids = frozenset(cid for cid, _ in g.items)
            k = (g.source, g.anchor)
            a, b, was = told.get(k, (g.start, g.end, frozenset()))
            told[k] = (min(a, g.start), max(b, g.end), was | ids)

    async def _scheduled(self, screen_id: str, lo: datetime, hi: datetime) -> list[Span]:
        """(start, end, content ids) of what the box scheduled on the screen over [lo, hi),
        by its current definitions and by the plans it sent the screen."""
        cat = await self.catalog()
        ref = self._screens[screen_id]
        segs = resolver.plan(cat, ref, lo, hi)
        told = list(self._told.get(screen_id, {}).values())
        return [(g.start, g.end, frozenset(cid for cid, _ in g.items)) for g in segs] + told

    async def receive_plays(self, screen_id: str, raw: Any) -> dict[str, list[str]]:
        """Store reported plays; returns ids to forget: ``ack`` (stored) and ``rejected``.

        Only plausible plays are stored: at most MAX_PLAYS a request, ended no later than now
        (plus clock skew), started within ``plays_max_age_days``, and of content the box had
        scheduled on that screen at that time (by its current definitions)."""
        if isinstance(raw, list) and len(raw) > MAX_PLAYS:
            raise PlaysRefused(f"records: at most {MAX_PLAYS} play records per request")
        self.seen(screen_id)
        now = datetime.now(UTC)
        oldest = now - timedelta(days=self.cfg.plays_max_age_days)
        good, rejected = [], []
        for r in raw if isinstance(raw, list) else []:
            try:
                started = datetime.fromisoformat(r["started_at"])
                ended = datetime.fromisoformat(r["ended_at"])
                rec = PlayRecord(
                    id=r["id"],
                    screen_id=screen_id,
                    content_id=r["content_id"],
                    started_at=started,
                    ended_at=ended,
                    duration_ms=int((ended - started).total_seconds() * 1000),
                )
                if not (oldest <= rec.started_at <= rec.ended_at <= now + CLOCK_SKEW):
                    raise ValueError("times out of range")
                if len(rec.id) > 64 or len(rec.content_id) > 128:
                    raise ValueError("id too long")
                good.append(rec)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                log.warning("screen %s sent a bad play record (%s): %.200r", screen_id, e, r)
                if isinstance(r, dict) and isinstance(r.get("id"), str):
                    rejected.append(r["id"][:64])
        if good:
            lo = min(p.started_at for p in good) - timedelta(seconds=1)
            hi = max(p.ended_at for p in good) + timedelta(seconds=1)
            segs = await self._scheduled(screen_id, lo, hi)
            fits = []
            for p in good:
                ids: set[str] = set()
                for a, b, cids in segs:
                    if a <= p.ended_at and p.started_at < b:
                        ids |= cids
                if p.content_id in ids:
                    fits.append(p)
                else:
                    rejected.append(p.id)
            good = fits
        ack = await self.box.store.run(db.record_plays, self.box.store.sync, good) if good else []
        return {"ack": ack, "rejected": rejected}

    def seen(self, screen_id: str) -> None:
        self.last_seen[screen_id] = _time.monotonic()

    async def _liveness(self) -> None:
        """A player that stops reporting becomes an offline health event (and back online)."""
        period = min(5.0, self.cfg.offline_after_s / 4)
        states = await self.box.store.run(db.player_states, self.box.store.sync)
        known = {k: v["state"] for k, v in states.items()}
        while True:
            await asyncio.sleep(period)
            try:
                await self._liveness_step(known)
            except Exception:  # a failed write must not end the watch for good
                log.exception("screen liveness check failed; trying again in %.1f s", period)

    async def _liveness_step(self, known: dict[str, str]) -> None:
        """One pass of `_liveness`: write each player's state when it changed."""
        now = _time.monotonic()
        for sid in list(self._screens):
            seen = self.last_seen.get(sid)
            connected = bool(self.sockets.get(sid))
            if connected or (seen is not None and now - seen < self.cfg.offline_after_s):
                state, reason = "online", "player reporting"
            elif now - self._started >= self.cfg.offline_after_s:
                state = "offline"
                reason = f"player has not reported for {self.cfg.offline_after_s:.0f} s"
            else:
                continue
            if known.get(sid) == state:
                continue
            health = DeviceHealth(
                id=new_id("dh"),
                device_kind="screen",
                device_id=sid,
                state=state,
                previous=known.get(sid),
                reason=reason,
            )
            stamp = datetime.now(UTC).isoformat() if seen is not None else None
            await self.box.store.run(
                db.set_player_state, self.box.store.sync, sid, state, stamp, health
            )
            known[sid] = state
            log.info("screen %s player is %s (%s)", sid, state, reason)

    # --- definitions (API and cloud commands share these) ------------------------------------

    async def put_content(self, item: ContentItem) -> None:
        if item.kind in resolver.FILE_KINDS and item.sha256 is None:
            raise StandardError(f"content_item: sha256: required for kind {item.kind!r}")
        if item.kind == "url" and not item.url:
            raise StandardError("content_item: url: required for kind 'url'")
        await self.box.store.run(db.put_content, self.box.store.sync, item)
        self._wake_downloads.set()
        await self.changed()

    async def put_playlist(self, pl: Playlist) -> None:
        await self.box.store.run(db.put_playlist, self.box.store.sync, pl)
        await self.changed()

    async def put_schedule(self, entry: ScheduleEntry) -> None:
        await self.box.store.run(db.put_schedule, self.box.store.sync, entry)
        await self.changed()

    async def put_screen(self, screen: Screen) -> None:
        await self.box.store.run(db.put_screen, self.box.store.sync, screen)
        await self.changed()

    async def start_emergency(self, em: Emergency) -> Emergency:
        if em.expires_at <= em.starts_at:
            raise StandardError("emergency: expires_at: must be after starts_at")
        await self.box.store.run(db.put_emergency, self.box.store.sync, em)
        log.warning("emergency broadcast %s (%s): %s", em.id, em.source, em.title)
        await self.changed()
        return em

    async def cancel_emergency(self, em_id: str) -> Emergency | None:
        em = await self.box.store.run(
            db.cancel_emergency, self.box.store.sync, em_id, datetime.now(UTC)
        )
        if em is not None:
            await self.changed()
        return em

    async def _cmd_content(self, target: str, cmd: Command) -> str:
        try:
            await self.put_content(parse_record(ContentItem, cmd.args))
        except StandardError as e:
            raise CommandError(str(e)) from e
        return "content stored"

    async def _cmd_playlist(self, target: str, cmd: Command) -> str:
        try:
            await self.put_playlist(parse_record(Playlist, cmd.args))
        except StandardError as e:
            raise CommandError(str(e)) from e
        return "playlist stored"

    async def _cmd_schedule(self, target: str, cmd: Command) -> str:
        try:
            await self.put_schedule(parse_record(ScheduleEntry, cmd.args))
        except StandardError as e:
            raise CommandError(str(e)) from e
        return "schedule stored"

    async def _cmd_emergency(self, target: str, cmd: Command) -> str:
        try:
            em = parse_record(Emergency, cmd.args)
            await self.start_emergency(em)
        except StandardError as e:
            raise CommandError(str(e)) from e
        return f"emergency {em.id} broadcast"

    async def _cmd_emergency_cancel(self, target: str, cmd: Command) -> str:
        em_id = cmd.args.get("id")
        if not isinstance(em_id, str):
            raise CommandError("args.id: the emergency id is required")
        if await self.cancel_emergency(em_id) is None:
            raise CommandError(f"args.id: no emergency {em_id!r}")
        return f"emergency {em_id} cancelled"

    # --- content downloads ---------------------------------------------------------------------

    def _cloud(self) -> tuple[Any, str | None]:
        """The sync service (issue 7) and its cloud URL, if this box is provisioned."""
        try:
            sync = self.box.get(SYNC)
        except KeyError:
            return None, None
        return sync, getattr(sync, "cloud_url", None)

    def _auth_headers(self, url: str) -> dict[str, str]:
        # Only requests to our own cloud carry its credentials, never to another host.
        sync, cloud = self._cloud()
        if sync is None or not cloud or not url.startswith(str(cloud).rstrip("/") + "/"):
            return {}
        fn = getattr(sync, "auth_headers", None)
        return dict(fn("GET", url)) if callable(fn) else {}

    def _absolute(self, url: str) -> str:
        """Relative content URLs (``/blobs/<sha>``) are on the cloud that sent them."""
        _, cloud = self._cloud()
        if url.startswith("/") and cloud:
            return str(cloud).rstrip("/") + url
        return url

    async def protected_shas(self) -> set[str]:
        cat = await self.catalog()
        now = datetime.now(UTC)
        ids = resolver.scheduled_content(cat, now, now + timedelta(days=self.cfg.protect_days))
        return {cat.items[i].sha256 for i in ids if i in cat.items and cat.items[i].sha256}

    async def _verify_then_download(self) -> None:
        bad = await self.cache.verify_all()
        if bad:
            await self.changed()
        next_try: dict[str, float] = {}
        backoff: dict[str, float] = {}
        while True:
            self._wake_downloads.clear()
            cat = await self.catalog()
            fetched = False
            for item in list(cat.items.values()):
                if item.kind not in resolver.FILE_KINDS or not item.sha256 or not item.url:
                    continue
                cached = cat.ready is None or item.id in cat.ready
                if cached or next_try.get(item.sha256, 0) > _time.monotonic():
                    continue
                url = self._absolute(item.url)
                try:
                    await self.cache.fetch(
                        item.sha256,
                        url,
                        size=item.size_bytes,
                        headers=functools.partial(self._auth_headers, url),
                        protected=await self.protected_shas(),
                    )
                    self.download_errors.pop(item.id, None)
                    backoff.pop(item.sha256, None)
                    fetched = True
                except (CacheError, OSError, TimeoutError, Exception) as e:
                    delay = min(backoff.get(item.sha256, 2.0) * 2, 300.0)
                    backoff[item.sha256] = delay
                    next_try[item.sha256] = _time.monotonic() + delay
                    self.download_errors[item.id] = str(e) or type(e).__name__
                    log.warning(
                        "content %s download failed (retry in %.0f s): %s", item.id, delay, e
                    )
            if fetched:
                await self.changed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_downloads.wait(), 5.0)

    async def ensure_cached(self, sha: str) -> bool:
        """For serving: a file that fails verification is dropped and queued to be re-fetched."""
        if await self.cache.has(sha):
            return True
        self._catalog = None
        self._wake_downloads.set()
        return False

    # --- local triggers -------------------------------------------------------------------------

    async def _alerts(self) -> None:
        """An alert of a configured type (e.g. fire) on the box starts an emergency broadcast
        (a failure is retried by the supervisor, the same alarm as the same broadcast)."""
        while True:
            self._wake_alerts.clear()
            if not await self._alerts_step():
                await self._wake_alerts.wait()

    async def _alerts_step(self) -> int:
        """One pass of `_alerts`: the new events, each alarm broadcast; the cursor moves past
        an alarm only once its emergency is stored (a failed write is tried again)."""
        types = set(self.cfg.alert_emergency_types)
        events = await self.box.store.events_after(self._alert_cursor, 500)
        for ev in events:
            if ev.kind == "alert" and ev.payload.get("type") in types:
                em = self._pending_alarm if self._pending_alarm_for == ev.id else None
                if em is None:
                    p = ev.payload
                    now = datetime.now(UTC)
                    try:
                        # An alarm may carry no text (just its type): a generic title, since
                        # an empty one fails validation.
                        em = Emergency(
                            id=new_id("em"),
                            title=(p.get("message") or "紧急通知")[:200],
                            body="",
                            level=p.get("level", "critical"),
                            starts_at=now,
                            expires_at=now + timedelta(minutes=self.cfg.alert_emergency_minutes),
                            source="local",
                        )
                    except (ValidationError, StandardError) as e:  # never valid: skip it
                        log.error("alarm %s cannot become an emergency broadcast: %s", ev.id, e)
                        self._alert_cursor = ev.id
                        continue
                    # Kept for a retry: the same broadcast (id, times), not a new one each time.
                    self._pending_alarm, self._pending_alarm_for = em, ev.id
                await self.start_emergency(em)
                self._pending_alarm, self._pending_alarm_for = None, None
            self._alert_cursor = ev.id
        return len(events)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.changed()

    # --- displays (RS-232 power and brightness) -------------------------------------------------

    async def _displays(self) -> None:
        try:
            devices = self.box.get(DEVICES)
        except KeyError:
            return
        while True:
            local = datetime.now(self.tz).time()
            for sid, drv in devices.of_kind("screen").items():
                if isinstance(drv, DisplayDriver):
                    await self.apply_display(sid, drv, local)
            await asyncio.sleep(self.cfg.display_check_s)

    async def apply_display(self, sid: str, drv: DisplayDriver, local: Any) -> None:
        target = display_target(drv.options, local)
        try:
            if self._applied.get(sid) != target:
                await drv.set_power(target[0])
                if target[1] is not None:
                    await drv.set_brightness(target[1])
                self._applied[sid] = target
            st = await drv.read_status()
            if st.power is not None and st.power != target[0]:
                await drv.set_health(
                    "degraded", f"display reports power {st.power}, wanted {target[0]}"
                )
            else:
                await drv.set_health("online", "display answering")
        except Exception as e:
            self._applied.pop(sid, None)
            await drv.set_health("offline", f"display not answering: {e}")


def static_dir() -> Path:
    return Path(__file__).parent / "static"
