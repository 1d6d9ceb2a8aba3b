"""Installer capability: install/update, LAN discovery, commissioning (doctor), first-boot web."""
