"""The feature kit: start order from declared dependencies, typed lookups, config aliases."""

from __future__ import annotations

import warnings

import pytest

from edge.core.config import ConfigError
from edge.core.feature import (
    CycleError,
    DemoStep,
    Feature,
    ServiceKey,
    ServiceSpec,
    demo_order,
    start_order,
)
from edge.daemon import service_classes
from edge.features import FEATURES, parse_config

A, B, C, D = (ServiceKey(n) for n in "abcd")


def names(specs: list[ServiceSpec]) -> list[str]:
    return [s.key.name for s in specs]


def test_start_order_follows_after_and_before_and_keeps_the_list_order_otherwise() -> None:
    specs = [
        ServiceSpec(A, "x:A", after=(C,)),
        ServiceSpec(B, "x:B"),
        ServiceSpec(C, "x:C"),
        ServiceSpec(D, "x:D", before=(A,)),
    ]
    assert names(start_order(specs)) == ["b", "c", "d", "a"]


def test_a_circle_or_an_unknown_dependency_is_refused_by_name() -> None:
    with pytest.raises(CycleError, match="circle among"):
        start_order([ServiceSpec(A, "x:A", after=(B,)), ServiceSpec(B, "x:B", after=(A,))])
    with pytest.raises(CycleError, match="nothing declares"):
        start_order([ServiceSpec(A, "x:A", after=(C,))])
    with pytest.raises(CycleError, match="declared twice"):
        start_order([ServiceSpec(A, "x:A"), ServiceSpec(A, "y:A")])


def test_demo_steps_run_after_the_steps_they_need() -> None:
    steps = [DemoStep("late", "m:f", after=("early",)), DemoStep("early", "m:g")]
    assert [s.name for s in demo_order(steps)] == ["early", "late"]


def test_the_box_starts_its_services_in_the_order_it_always_did() -> None:
    # The order the daemon's hand-written list had before the features declared it.
    assert [c.name for c in service_classes(FEATURES)] == [
        "bus", "devices", "faces", "installer", "advertise", "screens", "reports", "tickets",
        "access", "resident_site", "portal", "intercom", "office", "sync", "portal_relay", "api",
    ]


def test_every_declared_part_resolves() -> None:
    from edge.core.feature import resolve

    for f in FEATURES:
        for ref in (*(s.factory for s in f.services), *f.cli, *(d.step for d in f.demo)):
            assert resolve(ref) is not None, (f.name, ref)


def test_the_old_section_name_still_works_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"\[face\] is now \[faces\]"):
        config = parse_config("[face]\nthreshold = 0.5\n")
    assert config.faces.threshold == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_config("[faces]\nthreshold = 0.52\n").faces.threshold == 0.52
    with pytest.raises(ConfigError, match=r"\[face\] and \[faces\] are the same section"):
        parse_config("[face]\nthreshold = 0.5\n[faces]\nthreshold = 0.5\n")


def test_a_bad_key_under_the_old_name_is_named_with_its_line() -> None:
    with pytest.raises(ConfigError, match=r":2: faces.threshold"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        parse_config("[face]\nthreshold = 7\n")


def test_config_section_by_type() -> None:
    from edge.faces.config import FacesConfig

    config = parse_config("[faces]\nthreshold = 0.5\n")
    assert config.section(FacesConfig) is config.faces


def test_box_get_is_typed_by_key_and_fails_by_name() -> None:
    from edge.core.box import Box
    from edge.core.service import Service

    class Thing(Service):
        name = "thing"

    box = Box.__new__(Box)  # no app or store needed for lookups
    box.services = [thing := Thing(box)]
    key: ServiceKey[Thing] = ServiceKey("thing")
    assert box.get(key) is thing
    assert box.get(ServiceKey("other"), None) is None
    with pytest.raises(KeyError, match="other"):
        box.get(ServiceKey("other"))


def test_feature_names_are_unique() -> None:
    assert len({f.name for f in FEATURES}) == len(FEATURES)
    assert all(isinstance(f, Feature) for f in FEATURES)
