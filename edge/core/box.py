"""The Box: what the services share (config, store, commands, HTTP app) and each other by key."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aiohttp import web

from edge.core.commands import Commands
from edge.core.feature import ServiceKey
from edge.core.http import make_app

if TYPE_CHECKING:
    from edge.core.config import CoreConfig
    from edge.core.service import Service
    from edge.core.store import AsyncStore

S = TypeVar("S", bound="Service")


class Box:
    def __init__(self, config: CoreConfig, store: AsyncStore) -> None:
        self.config = config
        self.store = store
        self.commands = Commands()
        self.http: web.Application = make_app(self)
        self.services: list[Service] = []
        self.started_monotonic = time.monotonic()

    @overload
    def get(self, key: ServiceKey[S]) -> S: ...
    @overload
    def get(self, key: ServiceKey[S], default: None) -> S | None: ...

    def get(self, key: ServiceKey[S], default: Any = KeyError) -> Any:
        """The running service of ``key`` (typed by the key), or ``default`` if given."""
        for s in self.services:
            if s.name == key.name:
                return s
        if default is KeyError:
            raise KeyError(key.name)
        return default

    def service(self, name: str) -> Any:
        """By name, untyped: for tools and tests; services use :meth:`get` with a key."""
        return self.get(ServiceKey(name))
