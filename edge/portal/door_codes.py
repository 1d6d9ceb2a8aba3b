"""A login code on the door's screen, for the resident the door just let in by face.

The person who just passed face recognition and liveness stands at the door, so the screen
attached to it (``[[screens]] door = "<door id>"``) shows them a fresh one-time code for
``door_code_show_s`` seconds: a QR code of the login link, the digits and their masked name.
By default only to residents without a live portal session (``[portal] door_codes``), so daily
entries stay quiet.

Whoever stands behind them sees (and can scan) the same code (probe finding), so a door code
signs in only together with the resident's own door PIN, the one they type at face doors
(``PortalService._door_pin``; ``PIN_TRIES`` wrong PINs spend the code). Residents without a
door PIN get no code on the door: it would be worth nothing to them and something to others.

The code is issued in a task the access engine starts after the relay is on (never on the
door's path), goes to the pages over their WebSocket only, and is never journalled: no MQTT
message or outbox row carries it (the portal_codes row holds its keyed hash).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from edge.access import ACCESS
from edge.access import second_factor as factors
from edge.core.box import Box
from edge.core.qr import qr_svg
from edge.portal import PORTAL_RELAY
from edge.portal import store as db
from edge.portal.codes import group_digits, link_base, login_link, mask_name
from edge.portal.guard import digits_for
from edge.screens import SCREENS

log = logging.getLogger(__name__)


class DoorCodes:
    def __init__(self, box: Box) -> None:
        self.box = box
        self.cfg = box.config.portal
        self.screens_of: dict[str, list[str]] = {}
        for s in box.config.screens:
            if s.door:
                self.screens_of.setdefault(s.door, []).append(s.id)
        self.shown = 0  # codes shown on a screen
        self.skipped = 0  # grants of residents who already have a session
        self.no_pin = 0  # grants of residents without a door PIN (a code would be useless)

    def install(self) -> bool:
        """Listen to the access engine's face grants; False when there is nothing to do."""
        if self.cfg.door_codes == "off" or not self.screens_of:
            return False
        try:
            self.box.get(ACCESS).on_face_grant(self.on_grant)
            self.screens = self.box.get(SCREENS)
        except KeyError:
            log.warning("portal: door codes need the access and screens services")
            return False
        return True

    async def on_grant(self, door_id: str, resident_id: str) -> None:
        targets = [s for s in self.screens_of.get(door_id, ()) if self.screens.connected(s)]
        if not targets:
            return  # nobody would see it: issue nothing
        store = self.box.store
        if self.cfg.door_codes == "no_session" and await store.run(
            db.has_live_session, store.sync, resident_id
        ):
            self.skipped += 1
            return
        if await store.run(factors.pin_of, store.sync, resident_id) is None:
            # the code would sign in only with the resident's door PIN (PortalService
            # _door_pin), and they have none: showing it would only invite the person behind
            self.no_pin += 1
            return
        away = self.box.get(PORTAL_RELAY).live_away_url()
        got = await store.run(
            db.issue_code,
            store.sync,
            resident_id,
            channel="door",
            by=f"door:{door_id}",
            ttl=timedelta(minutes=self.cfg.door_code_ttl_min),
            digits=digits_for(self.cfg, away or ""),  # long when its link goes via the cloud
        )
        for sid in targets:
            # A phone must reach the link: the configured public URL, else through the cloud
            # (mobile data works too), else the address the screen's page was opened at.
            base = link_base(self.cfg.public_url, away, self.screens.origins.get(sid, ""))
            link = login_link(base, got["code"])
            overlay = {
                "kind": "login_code",
                "code": got["code"],
                "code_text": group_digits(got["code"]),  # in fours, as on printed cards
                "link": link,
                "qr_svg": await asyncio.to_thread(qr_svg, link),
                "name": mask_name(got["name"]),
                "how": "手机扫码或输入登录码，再输入您的开门密码",
                "valid_min": round(self.cfg.door_code_ttl_min),
                "show_ms": int(self.cfg.door_code_show_s * 1000),
            }
            if await self.screens.overlay(sid, overlay):
                self.shown += 1
        log.info("door %s: login code for %s shown on %s", door_id, resident_id, targets)
