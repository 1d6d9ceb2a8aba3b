"""The box's cloud sync client (issue 7): outbox upload, download feed, provisioning."""
