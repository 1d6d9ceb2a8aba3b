"""Give freed heap back to the OS after the big one-off loads (models, gallery, start-up).

Parsing the ONNX files and streaming 100k templates out of SQLite leave tens of MB of freed
malloc arenas that glibc keeps mapped; ``malloc_trim(0)`` returns them (the faces service after
its load, the daemon once every service runs). A no-op where the C library has no such call
(musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util


def trim_heap() -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
