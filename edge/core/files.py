"""Files the box's own commands write into its data folder.

On an installed box the daemon runs as the data folder's owner (install.sh's ``qilu-edge``
user, systemd ``StateDirectory=``), while installers run the box's commands with sudo: what a
root command creates there must belong to that owner, or the daemon cannot read or replace it.
"""

from __future__ import annotations

import os
from pathlib import Path


def to_folder_owner(fd: int, folder: Path) -> None:
    """Give the open file (or folder) ``fd`` to ``folder``'s owner when running as root."""
    if os.geteuid() == 0:
        st = folder.stat()
        os.fchown(fd, st.st_uid, st.st_gid)


def make_folder(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``; a folder made by root goes to its parent
    folder's owner."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        to_folder_owner(fd, path.parent)
    finally:
        os.close(fd)
