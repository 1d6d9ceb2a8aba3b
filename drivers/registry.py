"""Driver registry: (device kind, type key) -> driver class. Modules are imported on first use."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

KINDS = ("doors", "cameras", "screens")
_drivers: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
_loaded = False

T = TypeVar("T", bound=type)


def register(kind: str, type_: str) -> Callable[[T], T]:
    if kind not in _drivers:
        raise ValueError(f"unknown device kind {kind!r}")

    def deco(cls: T) -> T:
        if not hasattr(cls, "Options"):
            raise TypeError(f"driver {cls.__name__} has no Options model")
        _drivers[kind][type_] = cls
        cls.TYPE = type_  # type: ignore[attr-defined]
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for kind in KINDS:
        package = importlib.import_module(f"drivers.{kind}")
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_") and info.name != "base":
                importlib.import_module(f"drivers.{kind}.{info.name}")


def get(kind: str, type_: str) -> type:
    _load_all()
    return _drivers[kind][type_]


def types(kind: str) -> list[str]:
    _load_all()
    return sorted(_drivers[kind])
