"""The repair-ticket state machine (pure: no I/O).

    open ──assign──► assigned ──start──► in_progress ──resolve──► resolved ──confirm──► confirmed
      ▲                 ▲  (reassign)                                 │
      └─────────────────┴──────assign / start◄── reopened ◄──reopen───┘

Staff (or ops through the cloud, or the box itself) assign, start and resolve; the resident
who reported confirms or reopens. ``system_resolve`` is the box closing a device-health ticket
when the device comes back: any unfinished state → resolved, then ``confirm`` by the system.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVE = ("open", "assigned", "in_progress", "reopened")
FINAL = ("confirmed",)
STAFF_ROLES = ("staff", "admin", "ops", "system")


class TransitionError(ValueError):
    """An action that the ticket's state (or the caller's role) does not allow."""

    def __init__(self, message: str, field: str = "action") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Rule:
    sources: tuple[str, ...]
    target: str
    roles: tuple[str, ...]


RULES: dict[str, Rule] = {
    "assign": Rule(("open", "assigned", "reopened", "in_progress"), "assigned", STAFF_ROLES),
    "start": Rule(("assigned", "reopened"), "in_progress", STAFF_ROLES),
    "resolve": Rule(("in_progress",), "resolved", STAFF_ROLES),
    "confirm": Rule(("resolved",), "confirmed", ("resident", *STAFF_ROLES)),
    "reopen": Rule(("resolved",), "reopened", ("resident", *STAFF_ROLES)),
    "system_resolve": Rule(ACTIVE, "resolved", ("system",)),
}
ACTIONS = tuple(RULES)


def next_status(
    status: str, action: str, role: str, *, assignee: str | None, current_assignee: str | None
) -> str:
    """The status after ``action``, or TransitionError saying why it is not allowed."""
    rule = RULES.get(action)
    if rule is None:
        raise TransitionError(f"action: unknown action {action!r} (known: {', '.join(ACTIONS)})")
    if role not in rule.roles:
        raise TransitionError(f"action: {role} may not {action} a ticket", field="action")
    if status not in rule.sources:
        raise TransitionError(
            f"action: cannot {action} a ticket that is {status}"
            f" (allowed from: {', '.join(rule.sources)})"
        )
    if action == "assign" and not assignee:
        raise TransitionError("assignee: required to assign a ticket", field="assignee")
    if action == "start" and not (assignee or current_assignee):
        raise TransitionError("assignee: assign the ticket before starting it", field="assignee")
    return rule.target
