"""Resident portal (issue 9): reading with personal recommendations, community services."""
