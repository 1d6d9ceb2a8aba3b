"""Repair tickets: the state machine, assignment, due times, overdue alerts, history."""
