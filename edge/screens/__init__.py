"""Outdoor publicity-screen player: content cache, schedules, emergencies, proof of play."""
