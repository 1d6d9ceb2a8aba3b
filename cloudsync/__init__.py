"""The central cloud sync service (``qilu-cloudsync``): boxes upload, ops read and publish."""
