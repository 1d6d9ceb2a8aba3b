"""Files that ship beside the code: the taxonomy, the text model's training corpus, the model
manifest and the example config (the box and the cloud's retraining both read them).

In a checkout (or an editable install) they are read from the repository; a wheel installs
them under ``<prefix>/share/qilu-edge/`` (setup.py ``data_files``), which is where an
installed box (scripts/install.sh) finds them.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]  # common/resources.py -> the checkout
SHARE = Path(sys.prefix) / "share" / "qilu-edge"


def shipped(relative: str) -> Path:
    """The path of a shipped file, e.g. ``shipped("config/taxonomy.toml")``."""
    for base in (CHECKOUT, SHARE):
        if (base / relative).exists():
            return base / relative
    return CHECKOUT / relative  # missing everywhere: errors name the checkout path
