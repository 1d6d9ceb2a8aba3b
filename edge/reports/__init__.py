"""Residents' reports: Chinese text analysis, the standard taxonomy, early warning, the API."""
