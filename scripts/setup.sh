#!/usr/bin/env bash
# Set up Qilu Edge from a checkout on Debian 12 / Raspberry Pi OS: the system packages it needs
# (installed only if missing: as root directly, otherwise via sudo), a virtualenv in .venv, the
# package itself and, with "test", the test tools and peers.
#   bash scripts/setup.sh demo   # what the demo needs
#   bash scripts/setup.sh test   # plus test peers (socat, Chromium, PostgreSQL, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-demo}"

apt_demo=(python3-venv mosquitto mosquitto-clients sqlite3 ffmpeg fonts-wqy-microhei)
apt_test=(socat chromium mbpoll postgresql gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
          gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
          gstreamer1.0-libav systemd faketime coturn haproxy)
pkgs=("${apt_demo[@]}")
[ "$mode" = test ] && pkgs+=("${apt_test[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing system packages: ${missing[*]}"
    if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
        echo "need root to install: apt-get install ${missing[*]}" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
extra=""
[ "$mode" = test ] && extra="[test]"
# A checkout installs everything in one distribution, "qilu" (setup.py; QILU_DIST picks one
# of qilu-edge, qilu-cloudsync, qilu-common for a wheel); before the split it was named qilu-edge.
if .venv/bin/pip show qilu-edge 2>/dev/null | grep -q "^Editable project location: $(pwd)$"; then
    .venv/bin/pip uninstall -q -y qilu-edge >/dev/null
fi
echo "==> installing qilu${extra} into .venv"
# pip's and setuptools' chatter goes to a log; it is shown only if the install fails.
if ! .venv/bin/pip install -q --disable-pip-version-check -e ".${extra}" > .venv/pip-install.log 2>&1; then
    tail -40 .venv/pip-install.log >&2; echo "pip install failed (full log: .venv/pip-install.log)" >&2; exit 1
fi
if [ "$mode" = test ]; then
    # ONVIF test camera; --no-deps: its opencv-python would clash with the headless OpenCV.
    .venv/bin/pip install -q --disable-pip-version-check --no-deps "ipycam==1.3.0" || true
fi
.venv/bin/python -c "import edge, cloudsync, drivers, common"
.venv/bin/qilu-edge models fetch >/dev/null && .venv/bin/python tests/data/fetch_faces.py  # face models + test photos
# The report text model, built from the shipped corpus when it is missing or older than it
# or than the training code.
if [ ! -f models/text/model.npz ] || [ -n "$(find tests/data/text/train tests/data/community_messages.csv common/textmodel.py -newer models/text/model.npz 2>/dev/null | head -1)" ]; then
    echo "==> building the report text model (models/text/model.npz)"
    .venv/bin/python -m common.texttrain --out models/text/model.npz >/dev/null
fi
echo "==> setup ($mode) done"
