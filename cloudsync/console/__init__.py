"""The city operations console (城市运营中心, ``/console/``): sign-in and sessions (auth.py), the
audit log (audit.py), the endpoints the pages need beyond the ops API (api.py) and the page
shells (pages.py). The look is shared with the box's property office: common/console.py.
Manual: docs/console.md."""
