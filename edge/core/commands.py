"""Command dispatch: MQTT ``.../cmd``, the box API and the cloud all end up here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from edge.core.standard import Command, CommandResult, new_id

log = logging.getLogger(__name__)

Handler = Callable[[str, Command], Awaitable[str]]


class CommandError(Exception):
    """The command was understood but could not be carried out; the message says why."""


class Commands:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}

    def register(self, target_kind: str, action: str, handler: Handler) -> None:
        self._handlers[(target_kind, action)] = handler

    def known(self, target_kind: str, action: str) -> bool:
        return (target_kind, action) in self._handlers

    def actions(self) -> list[str]:
        return sorted(f"{k}.{a}" for k, a in self._handlers)

    async def dispatch(self, target_kind: str, target_id: str, cmd: Command) -> CommandResult:
        handler = self._handlers.get((target_kind, cmd.action))
        ok, detail = False, ""
        if handler is None:
            known = ", ".join(self.actions()) or "none"
            detail = f"unknown command {target_kind}.{cmd.action} (known: {known})"
        else:
            try:
                detail = await handler(target_id, cmd)
                ok = True
            except CommandError as e:
                detail = str(e)
            except Exception as e:  # a handler bug must not kill the bus
                log.exception("command %s.%s failed", target_kind, cmd.action)
                detail = f"internal error: {e}"
        return CommandResult(
            id=new_id("cr"),
            command_id=cmd.id,
            target_kind=target_kind,
            target_id=target_id,
            ok=ok,
            detail=detail,
        )
