"""Access control: face doors, visitor passes (QR + PIN), remote open, device-health tickets.

``box.service("access")`` (:class:`edge.access.service.AccessService`) watches each door's
camera, decides against the policy (edge/access/policy.py) and drives the door drivers.
"""
