"""A second factor at face doors (issue 15 item 6): when face alone is not enough.

A face door whose gallery is too large for its target (the resident acceptance the box expects
at the derived threshold is below ``[access] second_factor_min_acceptance``), or a door set to
``second_factor = "always"``, does not open on a face match alone. The engine hands the match
(resident, fused score, frames) to :meth:`SecondFactors.challenge` instead of the relay, and
the door waits ``second_factor_timeout_s`` for one of:

- the resident's own PIN on the door's keypad or screen (``POST /api/v1/doors/{id}/pin``, the
  keypad route visitor PINs use): checked 1:1 against the resident the face named, so a PIN
  alone never opens a door and residents' PINs need not be unique;
- a tap on the resident's phone (``POST /api/v1/doors/{id}/confirm`` with their portal session;
  ``GET /api/v1/access/challenges`` lists what is waiting for them).

Per door ``[[doors]] second_factor = "auto" | "always" | "never"`` (default "auto"). The
granted event says which factor was used (``factor``: pin / phone); a wrong PIN is a denied
event (``wrong_pin``) that counts towards the keypad's per-source lockout and towards a
per-resident limit (``second_factor_max_failures`` within ``pin_lockout_s``, counted over all
doors: a stranger whom the face search names as X at k doors used to get k times the guesses):
the resident's PIN is then locked for ``pin_lockout_s``, twice as long at each further lock (at
most a day; the resident's own grant starts again), so a face with a guessing hand cannot try
PINs for ever by walking away and coming back (security probe 4: with a lock of the same
length every time it could, at 3 guesses a minute). While it is locked the door where the
guessing went on refuses that face (``second_factor_locked``); at the resident's other doors a
face named as them waits for their phone only (a PIN typed there is refused unchecked,
``second_factor_locked``), so a stranger cannot lock the resident out of every door: refused
outright only when the phone cannot be asked either.

The phone is asked at most ``second_factor_phone_max`` times per resident within
``second_factor_phone_window_s`` (any door): a stranger whom the face search names as a
resident cannot make that resident's phone ask "is this you?" over and over. Past the limit the
door waits for the resident's PIN only (the phone is not asked and cannot confirm; no answer
in time is ``second_factor_timeout_pin_only``), or, when the resident has no PIN, refuses at
once (``second_factor_phone_limited``).

Residents' PINs are kept only as an HMAC with the box key and the resident id
(``passes.pin_hash``, the visitor passes' PIN hash), in ``resident_pins`` (migration 0204).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge.access import passes
from edge.access import store as db
from edge.core.store.core import Store

if TYPE_CHECKING:
    from edge.access.service import AccessService, Outcome

log = logging.getLogger(__name__)
LOCK_MAX_S = 86400.0  # the longest a guessing face is locked out (each lock doubles)

# PINs a passer-by tries first; refused when a resident sets one.
_WEAK = {"0123", "1234", "12345", "123456", "1234567", "12345678", "654321", "4321",
         "9876", "987654", "112233", "121212", "123123", "520520", "5201314"}


def weak_pin(pin: str) -> str | None:
    """Why a resident's PIN is refused (or None): all one digit, a run, a well-known one."""
    if len(set(pin)) == 1:
        return "pin: all digits the same"
    if pin in _WEAK or pin in "01234567890" or pin in "09876543210":
        return "pin: too easy to guess"
    return None


def resident_pin_hash(key: bytes, resident_id: str, pin: str) -> str:
    # The resident id is part of the message: two residents with the same PIN get different
    # hashes, and a resident's hash never equals a visitor pass's.
    return passes.pin_hash(key, f"resident:{resident_id}:{pin}")


# --- store (run on the store thread: box.store.run(fn, box.store.sync, ...)) ---------------


def set_pin(store: Store, resident_id: str, pin_hash: str, actor: str | None) -> dict[str, Any]:
    with store.transaction():
        db._require_resident(store, resident_id)
        store.db.execute(
            "INSERT INTO resident_pins (resident_id, pin_hash, set_by, set_at) VALUES (?,?,?,?)"
            " ON CONFLICT (resident_id) DO UPDATE SET pin_hash = excluded.pin_hash,"
            " set_by = excluded.set_by, set_at = excluded.set_at",
            (resident_id, pin_hash, actor, db.iso()),
        )
    return {"resident_id": resident_id, "pin_set": True}


def clear_pin(store: Store, resident_id: str) -> dict[str, Any]:
    with store.transaction():
        db._require_resident(store, resident_id)
        store.db.execute("DELETE FROM resident_pins WHERE resident_id = ?", (resident_id,))
    return {"resident_id": resident_id, "pin_set": False}


def pin_of(store: Store, resident_id: str) -> str | None:
    with store.reading():
        row = store.db.execute(
            "SELECT pin_hash FROM resident_pins WHERE resident_id = ?", (resident_id,)
        ).fetchone()
    return None if row is None else str(row[0])


# --- the challenges ------------------------------------------------------------------------


@dataclass
class Challenge:
    door_id: str
    resident_id: str
    fields: dict[str, Any]  # the face decision's record fields (similarity, fused score, ...)
    t0: float  # the decisive frame (latency of the grant)
    expires: float  # monotonic
    why: str  # "always" or "auto" (the door's expected acceptance below the goal)
    phone: bool = True  # the resident's phone is asked (False: past the limit, PIN only)
    pin: bool = True  # the resident's PIN is checked (False: too many wrong PINs, phone only)
    task: asyncio.Task | None = field(default=None, repr=False)
    # Which wait a phone's answer is for: a tap on a prompt the page still shows must not
    # open the door for a newer wait at the same door (another face named the same resident).
    id: str = field(default_factory=lambda: secrets.token_urlsafe(9))

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "door_id": self.door_id, "resident_id": self.resident_id,
                "expires_in_s": round(max(0.0, self.expires - time.monotonic()), 1),
                "why": self.why, "phone": self.phone, "pin": self.pin}


class SecondFactors:
    """The pending second-factor challenges of the box: one per door (the face in front of
    it), in memory only: after a restart the resident shows their face again."""

    def __init__(self, svc: AccessService) -> None:
        self.svc = svc
        self.cfg = svc.cfg
        self.pending: dict[str, Challenge] = {}
        # Wrong PINs per resident, whatever the door: a stranger whom the face search names
        # as X at k doors gets X's guess budget once, not k times (security probe 4).
        self._fails: dict[str, list[float]] = {}  # resident -> times
        # resident -> (PIN locked until, how many locks in a row): each lock doubles
        self._locks: dict[str, tuple[float, int]] = {}
        # (door, resident) -> until: the door where the guessing went on refuses that face
        # outright; the resident's other doors still ask their phone (not their PIN).
        self._door_locks: dict[tuple[str, str], float] = {}
        self._asked: dict[str, list[float]] = {}  # resident -> when their phone was asked
        # Told when a door starts or stops waiting (the pages: the resident's phone prompt,
        # the door screen's keypad): ``await hook(door_id, state)``, state "waiting" or how
        # the wait ended ("opened", "denied", "timeout", "refused", "locked").
        self._hooks: list[Callable[[str, str], Coroutine[Any, Any, None]]] = []

    def on_change(self, hook: Callable[[str, str], Coroutine[Any, Any, None]]) -> None:
        self._hooks.append(hook)

    def _tell(self, door_id: str, state: str) -> None:
        # Each hook in its own task, like the face-grant hooks: nothing a page does can
        # delay or fail the door.
        for hook in self._hooks:
            task = asyncio.create_task(hook(door_id, state), name=f"second-factor-{state}")
            self.svc._hook_tasks.add(task)
            task.add_done_callback(self.svc._hook_done)

    # --- when ------------------------------------------------------------------------------

    def required(self, door_id: str) -> str | None:
        """Why this door asks for a second factor now ("always" / "auto"), or None."""
        dcfg = self.svc.doors_cfg.get(door_id)
        mode = getattr(dcfg, "second_factor", "auto")
        if mode == "always":
            return "always"
        if mode == "never":
            return None
        pipeline = self.svc._faces()
        if pipeline is None:
            return None
        allowed = self.svc.door_sets.get(door_id)
        n = pipeline.door_mask(allowed)[1] if allowed is not None else None
        op = pipeline.operating(getattr(dcfg, "face_target_fpir", None), n)
        if op is not None and op.expected_resident_acceptance < \
                self.cfg.second_factor_min_acceptance:
            return "auto"
        return None

    def _recent_fails(self, resident_id: str) -> int:
        now = time.monotonic()
        fails = [t for t in self._fails.get(resident_id, []) if now - t < self.cfg.pin_lockout_s]
        if fails:
            self._fails[resident_id] = fails
        else:
            self._fails.pop(resident_id, None)
        return len(fails)

    def _pin_locked(self, resident_id: str) -> bool:
        """Too many wrong PINs for this resident lately, at any door: their PIN is not
        checked anywhere (a face named as them may still be confirmed on their phone)."""
        until = self._locks.get(resident_id, (0.0, 0))[0]
        return (time.monotonic() < until
                or self._recent_fails(resident_id) >= self.cfg.second_factor_max_failures)

    def _door_locked(self, door_id: str, resident_id: str) -> bool:
        return time.monotonic() < self._door_locks.get((door_id, resident_id), 0.0)

    def _lock(self, door_id: str, resident_id: str) -> None:
        """Enough wrong PINs for this resident: their PIN is locked for pin_lockout_s, doubled
        for every lock that follows the last one within a day (at most a day; its tries start
        again after the lock), and the face at this door is refused as long."""
        now = time.monotonic()
        if len(self._locks) > 4096:  # bounded: locks over for a day are forgotten
            self._locks = {k: v for k, v in self._locks.items() if now - v[0] < LOCK_MAX_S}
        if len(self._door_locks) > 4096:
            self._door_locks = {k: v for k, v in self._door_locks.items() if v > now}
        until, n = self._locks.get(resident_id, (0.0, 0))
        n = n + 1 if now - until < LOCK_MAX_S else 1
        until = now + min(self.cfg.pin_lockout_s * 2 ** min(n - 1, 32), LOCK_MAX_S)
        self._locks[resident_id] = (until, n)
        self._door_locks[(door_id, resident_id)] = until
        self._fails.pop(resident_id, None)

    def _phone_asked(self, resident_id: str) -> int:
        """How often the resident's phone was asked within the window (old times dropped)."""
        now = time.monotonic()
        asked = [t for t in self._asked.get(resident_id, [])
                 if now - t < self.cfg.second_factor_phone_window_s]
        if asked:
            self._asked[resident_id] = asked
        else:
            self._asked.pop(resident_id, None)
        return len(asked)

    # --- the face asked for it ---------------------------------------------------------------

    async def challenge(self, door_id: str, resident_id: str, why: str, t0: float,
                        fields: dict[str, Any]) -> Outcome | None:
        """The face named ``resident_id`` at a door that wants a second factor: wait for it.
        Returns the denied outcome when the resident cannot be asked (too many wrong PINs
        lately, or their phone asked too often and no PIN set), else None (the door stays shut
        until the factor comes)."""
        pin = not self._pin_locked(resident_id)
        phone = self._phone_asked(resident_id) < self.cfg.second_factor_phone_max
        if self._door_locked(door_id, resident_id) or not (pin or phone):
            return await self.svc.deny(door_id, "face", "second_factor_locked",
                                       resident_id=resident_id, **fields)
        if not phone:
            store = self.svc.box.store
            if await store.run(pin_of, store.sync, resident_id) is None:
                log.info("door %s: face matched %s, whose phone was asked %d times lately and "
                         "who has no PIN: refused", door_id, resident_id,
                         self.cfg.second_factor_phone_max)
                return await self.svc.deny(door_id, "face", "second_factor_phone_limited",
                                           resident_id=resident_id, **fields)
        else:
            self._asked.setdefault(resident_id, []).append(time.monotonic())
        before = self._drop(door_id)
        if before is not None:
            # One wait per door (the face in front of it): the one it replaces ends here and,
            # like a timeout, leaves its denied event (before, it vanished without a record).
            await self.svc.deny(door_id, "face", "second_factor_replaced",
                                resident_id=before.resident_id, **before.fields)
        ch = Challenge(door_id, resident_id, dict(fields), t0,
                       time.monotonic() + self.cfg.second_factor_timeout_s, why, phone, pin)
        ch.task = asyncio.create_task(self._expire(ch), name=f"second-factor-{door_id}")
        self.svc._hook_tasks.add(ch.task)  # cancelled with the service
        ch.task.add_done_callback(self.svc._hook_tasks.discard)
        self.pending[door_id] = ch
        self._tell(door_id, "waiting")
        log.info("door %s: face matched %s, waiting for a second factor (%s%s)", door_id,
                 resident_id, why, "" if phone else "; PIN only, the phone was asked enough"
                 if pin else "; phone only, too many wrong PINs lately")
        return None

    async def _expire(self, ch: Challenge) -> None:
        await asyncio.sleep(max(0.0, ch.expires - time.monotonic()))
        if self.pending.get(ch.door_id) is ch:
            del self.pending[ch.door_id]
            self._tell(ch.door_id, "timeout")
            # PIN only: the record says the phone was not asked (it was, too often lately).
            why = "second_factor_timeout" if ch.phone else "second_factor_timeout_pin_only"
            await self.svc.deny(ch.door_id, "face", why, resident_id=ch.resident_id,
                                **ch.fields)

    def _drop(self, door_id: str) -> Challenge | None:
        ch = self.pending.pop(door_id, None)
        if ch is not None and ch.task is not None and ch.task is not asyncio.current_task():
            ch.task.cancel()
        return ch

    def waiting(self, door_id: str) -> Challenge | None:
        ch = self.pending.get(door_id)
        if ch is not None and time.monotonic() >= ch.expires:
            return None  # its timeout task records the event
        return ch

    def for_resident(self, resident_id: str | None) -> list[dict[str, Any]]:
        """Challenges waiting (for one resident, or all with None)."""
        return [c.as_dict() for d, c in self.pending.items()
                if self.waiting(d) is not None and (resident_id is None or (
                    c.resident_id == resident_id and c.phone))]

    # --- the factor came ------------------------------------------------------------------

    async def _grant(self, ch: Challenge, factor: str) -> Outcome:
        self._drop(ch.door_id)
        self._fails.pop(ch.resident_id, None)
        self._locks.pop(ch.resident_id, None)  # it was them: no lock to grow
        self._door_locks = {k: v for k, v in self._door_locks.items() if k[1] != ch.resident_id}
        self._asked.pop(ch.resident_id, None)  # it was them: their phone may be asked again
        # Rights may have changed while the door waited (a block, the end of a time window).
        why = await self.svc.check_policy(ch.resident_id, ch.door_id)
        if why is not None:
            self._tell(ch.door_id, "denied")
            return await self.svc.deny(ch.door_id, "face", why, resident_id=ch.resident_id,
                                       factor=factor, **ch.fields)
        out = await self.svc.grant(ch.door_id, "face", "match", t0=ch.t0,
                                   resident_id=ch.resident_id, factor=factor, **ch.fields)
        self._tell(ch.door_id, "opened" if out.granted else "denied")
        if out.granted:
            self.svc._after_face_grant(ch.door_id, ch.resident_id)
        return out

    async def enter_pin(self, door_id: str, pin: str, source: str) -> Outcome | None:
        """A PIN typed at a door with a waiting challenge: the named resident's own PIN opens
        it; a visitor pass's PIN is left to the pass check (None); anything else is a wrong
        PIN for that resident."""
        ch = self.waiting(door_id)
        if ch is None:
            return None
        store = self.svc.box.store
        # Phone only: the resident's PIN is not checked while it is locked (also at a door
        # whose wait began before guesses elsewhere locked it).
        if not ch.pin or self._pin_locked(ch.resident_id):
            if await store.run(db.find_pass_by_pin, store.sync,
                               passes.pin_hash(self.svc.key, pin), db.iso()) is not None:
                return None
            await self.svc.pin_failed(door_id, source)
            return await self.svc.deny(door_id, "pin", "second_factor_locked",
                                       resident_id=ch.resident_id, factor="pin",
                                       **{k: v for k, v in ch.fields.items() if k == "track"})
        want = await store.run(pin_of, store.sync, ch.resident_id)
        if want is not None and hmac.compare_digest(
                want, resident_pin_hash(self.svc.key, ch.resident_id, pin)):
            return await self._grant(ch, "pin")
        if await store.run(db.find_pass_by_pin, store.sync,
                           passes.pin_hash(self.svc.key, pin), db.iso()) is not None:
            return None
        await self.svc.pin_failed(door_id, source)
        self._fails.setdefault(ch.resident_id, []).append(time.monotonic())
        reason = "wrong_pin" if want is not None else "no_resident_pin"
        if self._recent_fails(ch.resident_id) >= self.cfg.second_factor_max_failures:
            self._lock(door_id, ch.resident_id)
            self._drop(door_id)  # enough guesses for this face: it must come back later
            self._tell(door_id, "locked")
        return await self.svc.deny(door_id, "pin", reason, resident_id=ch.resident_id,
                                   factor="pin", **{k: v for k, v in ch.fields.items()
                                                    if k == "track"})

    async def confirm(self, door_id: str, resident_id: str,
                      challenge_id: str | None = None) -> Outcome | None:
        """The resident tapped "it's me" on their phone; None when nothing waits for them
        (nor when the door asks for the PIN only: the phone was not asked, nor when the
        page answers another wait than the current one, ``challenge_id``)."""
        ch = self.waiting(door_id)
        if ch is None or ch.resident_id != resident_id or not ch.phone:
            return None
        if challenge_id is not None and not hmac.compare_digest(challenge_id, ch.id):
            return None
        return await self._grant(ch, "phone")

    async def refuse(self, door_id: str, resident_id: str,
                     challenge_id: str | None = None) -> Outcome | None:
        """The resident says "not me" on their phone: the wait ends, the door stays shut and
        the refusal is on the record (``second_factor_refused``); None when nothing waits for
        them there (or not the wait ``challenge_id``)."""
        ch = self.waiting(door_id)
        if ch is None or ch.resident_id != resident_id:
            return None
        if challenge_id is not None and not hmac.compare_digest(challenge_id, ch.id):
            return None
        self._drop(door_id)
        self._tell(door_id, "refused")
        return await self.svc.deny(door_id, "face", "second_factor_refused",
                                   resident_id=resident_id, factor="phone", **ch.fields)
