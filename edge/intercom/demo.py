"""Demo step: a visitor dials a flat on the door screen page, a phone answers and opens."""

from __future__ import annotations

from edge.core.demo import Demo, say


async def step_intercom(d: Demo) -> None:
    say("Visitor intercom", "not wired into the demo yet")
