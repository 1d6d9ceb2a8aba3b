"""Helpers that start real peers for tests (Chromium, ...), shared across capabilities."""
