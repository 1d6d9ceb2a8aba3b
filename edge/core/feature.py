"""How a capability declares itself: one :class:`Feature` in its package's ``__init__.py``.

The composition root (edge/features.py) lists the features; the daemon, the CLI and the demo
read that one list. A feature names its parts by ``"module:attribute"`` so that declaring it
imports nothing heavy (the face models, jieba): the part is imported when it is used.

    FACES: ServiceKey[FacesService] = ServiceKey("faces")   # typed lookups: box.get(FACES)
    FEATURE = Feature(
        name="faces",
        services=(ServiceSpec(FACES, "edge.faces.service:FacesService"),),
        config=FacesConfig, config_aliases=("face",),
        cli=("edge.faces.cli:resident", "edge.faces.cli:models_group"),
    )

Start order comes from the declared ``after`` keys (a topological sort, ties kept in the
order of the feature list), never from comments.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from edge.core.config import Section

if TYPE_CHECKING:
    from edge.core.service import Service

S = TypeVar("S", bound="Service")


@dataclass(frozen=True)
class ServiceKey(Generic[S]):
    """A service's name with its type: ``box.get(FACES)`` is typed ``FacesService``."""

    name: str


@dataclass(frozen=True)
class ServiceSpec:
    key: ServiceKey[Any]
    factory: str | Callable[..., Service]  # "module:Class" (or the class); called with the Box
    after: tuple[ServiceKey[Any], ...] = ()  # services that must start before this one
    before: tuple[ServiceKey[Any], ...] = ()  # services that must start after this one
    routes: str | None = None  # "module:add_routes(app, service)", called once it is made


@dataclass(frozen=True)
class DemoStep:
    name: str
    step: str  # "module:async function(demo)"
    after: tuple[str, ...] = ()  # demo steps whose outcome this step needs


@dataclass(frozen=True)
class Feature:
    name: str
    services: tuple[ServiceSpec, ...] = ()
    config: type[Section] | None = None  # its config section, named after the feature
    config_section: str | None = None  # when the section is not the feature's name
    config_aliases: tuple[str, ...] = ()  # older section names, still read (deprecated)
    cli: tuple[str, ...] = ()  # "module:click command" added to `qilu-edge`
    demo: tuple[DemoStep, ...] = ()
    demo_config: str | None = None  # "module:fn(work_dir) -> TOML" added to the demo config
    # Migrations: edge/<feature>/migrations/NNNN_name.sql, applied by the store at open.

    @property
    def section(self) -> str:
        return self.config_section or self.name


def resolve(ref: Any) -> Any:
    """``"package.module:attr"`` -> the attribute (imported on first use); else ``ref``."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


class CycleError(RuntimeError):
    pass


def start_order(specs: Sequence[ServiceSpec]) -> list[ServiceSpec]:
    """The services in an order that starts each after its ``after`` keys; among services
    free to start, the one listed first goes first (so the list order is kept where it can)."""
    later: dict[str, set[str]] = {}
    for s in specs:
        for k in s.before:
            later.setdefault(k.name, set()).add(s.key.name)
    return _toposort(
        specs,
        lambda s: s.key.name,
        lambda s: {k.name for k in s.after} | later.get(s.key.name, set()),
    )


def demo_order(steps: Sequence[DemoStep]) -> list[DemoStep]:
    return _toposort(steps, lambda s: s.name, lambda s: s.after)


def _toposort(items: Sequence[Any], name: Any, deps: Any) -> list[Any]:
    names = [name(i) for i in items]
    if len(set(names)) != len(names):
        raise CycleError(f"declared twice: {sorted(n for n in names if names.count(n) > 1)}")
    pending: dict[str, set[str]] = {}
    for item in items:
        wanted = set(deps(item))
        unknown = wanted - set(names)
        if unknown:
            raise CycleError(f"{name(item)} starts after {sorted(unknown)}, which nothing declares")
        pending[name(item)] = wanted
    done: list[Any] = []
    placed: set[str] = set()
    while len(done) < len(items):
        ready = next((i for i in items if name(i) not in placed and pending[name(i)] <= placed),
                     None)
        if ready is None:
            left = sorted(n for n in names if n not in placed)
            raise CycleError(f"start-after dependencies form a circle among {left}")
        done.append(ready)
        placed.add(name(ready))
    return done


def all_services(features: Iterable[Feature]) -> list[ServiceSpec]:
    return [s for f in features for s in f.services]
