"""Notifiers: other ways to reach a flat when the door calls (SMS, voice gateways).

A notifier is anything with a ``name`` and ``async ring(call, door_name)``; the service calls
each one when a call starts, and a failing gateway never stops the call. One implementation
ships: :class:`TwilioSms`, which speaks Twilio's Messages API (a form-encoded POST to
``/2010-04-01/Accounts/<sid>/Messages.json`` with HTTP basic auth), so it works with Twilio and
with the many gateways that copy that API. Phone numbers stay in the box's config.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp

from edge.core.standard import IntercomCall
from edge.intercom.config import IntercomConfig, SmsGateway


class Notifier(Protocol):
    name: str

    async def ring(self, call: IntercomCall, door_name: str) -> None: ...


class GatewayError(RuntimeError):
    pass


class TwilioSms:
    name = "sms"

    def __init__(self, cfg: SmsGateway) -> None:
        self.cfg = cfg
        self.sent = 0

    def message(self, call: IntercomCall, door_name: str) -> str:
        # No link and no picture: an SMS can be read by anyone holding the phone.
        return f"【社区门禁】{door_name}有访客呼叫 {call.flat}，请打开社区服务页面接听或开门。"

    async def ring(self, call: IntercomCall, door_name: str) -> None:
        numbers = self.cfg.numbers.get(call.flat, ())
        if not numbers:
            return
        url = (f"{self.cfg.url.rstrip('/')}/2010-04-01/Accounts/{self.cfg.account_sid}"
               "/Messages.json")
        auth = aiohttp.encode_basic_auth(self.cfg.account_sid, self.cfg.auth_token)
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        async with aiohttp.ClientSession(headers={"Authorization": auth}, timeout=timeout) as s:
            for to in numbers:
                form = {"To": to, "From": self.cfg.from_number,
                        "Body": self.message(call, door_name)}
                async with s.post(url, data=form) as r:
                    if r.status >= 300:
                        raise GatewayError(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
                self.sent += 1


def notifiers(cfg: IntercomConfig) -> list[Notifier]:
    out: list[Notifier] = []
    if cfg.sms is not None:
        out.append(TwilioSms(cfg.sms))
    return out
