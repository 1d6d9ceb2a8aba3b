"""Device drivers: one module per vendor/protocol, found by the config ``type`` key.

``drivers/<kind>/<type>.py`` registers its class with :func:`drivers.registry.register`; a new
vendor is one new file and nothing else changes.
"""
