#!/usr/bin/env bash
# Install Qilu Edge on a Debian 12 / Raspberry Pi OS box (arm64 or amd64). Idempotent: run it
# again to repair or to pick up a new version (an older one only with --downgrade); the
# config, token and data are kept.
#
#   sudo bash scripts/install.sh --community my-community --box-id box-001
#   sudo bash scripts/install.sh --wheel qilu_edge-0.2.0-py3-none-any.whl
#   bash scripts/install.sh --prefix /tmp/root      # throw-away root: everything is written
#                                                   # under it; no apt, user, systemctl
#
# What it does: system packages (mosquitto with a loopback-only listener, ffmpeg, CJK fonts),
# a `qilu-edge` system user, a virtualenv per version under /opt/qilu-edge/venvs with
# /opt/qilu-edge/current pointing at the active one, config in /etc/qilu-edge, data in
# /var/lib/qilu-edge, face models fetched and verified, and the systemd units enabled.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
prefix="" wheel="" community="" box_id="" cloud=0 start=1 models=1 downgrade=0
venv_args=() pip_args=()
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2%/}"; shift 2 ;;
        --wheel) wheel="$(realpath "$2")"; shift 2 ;;
        --community) community="$2"; shift 2 ;;
        --box-id) box_id="$2"; shift 2 ;;
        --cloud) cloud=1; shift ;;              # also enable qilu-cloudsync (central server)
        --no-start) start=0; shift ;;           # enable the units but do not start them now
        --no-models) models=0; shift ;;
        --downgrade) downgrade=1; shift ;;      # allow going back below the running version
        --venv-arg) venv_args+=("$2"); shift 2 ;;   # e.g. --system-site-packages
        --pip-arg) pip_args+=("$2"); shift 2 ;;     # e.g. --no-index --find-links DIR
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
    esac
done

P="$prefix"                      # "" on a real box
OPT=/opt/qilu-edge ETC=/etc/qilu-edge DATA=/var/lib/qilu-edge UNITS=/etc/systemd/system
USER_NAME=qilu-edge
say() { echo "==> $*"; }
real() { [ -z "$P" ]; }          # true on a real install, false in a throw-away root

if real && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo), or use --prefix DIR for a throw-away root" >&2
    exit 1
fi

# 1. System packages (only the missing ones).
apt_pkgs=(python3 python3-venv mosquitto mosquitto-clients sqlite3 ffmpeg fonts-wqy-microhei
          ca-certificates)
if real; then
    missing=()
    for p in "${apt_pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
else
    say "[prefix] skipping apt: ${apt_pkgs[*]}"
fi

# 2. The system user the daemon runs as (serial ports: dialout; USB cameras: video).
if real; then
    if ! id "$USER_NAME" >/dev/null 2>&1; then
        say "creating system user $USER_NAME"
        useradd --system --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
            --user-group "$USER_NAME"
    fi
    for g in dialout video; do getent group "$g" >/dev/null && usermod -aG "$g" "$USER_NAME"; done
    grp="$USER_NAME"
else
    say "[prefix] skipping user $USER_NAME"
    grp=""
fi

# 3. Folders. /etc/qilu-edge is group-writable: the installer web page saves the config.
install -d -m 0755 "$P$OPT" "$P$OPT/venvs" "$P$OPT/downloads" "$P$UNITS"
install -d -m 0770 "$P$ETC"
install -d -m 0750 "$P$DATA"
if real; then chown "root:$grp" "$P$ETC"; chown "$USER_NAME:$grp" "$P$DATA"; fi

# 4. The virtualenv for this version; `current` switched atomically (rename of a symlink).
if [ -n "$wheel" ]; then
    version="$(basename "$wheel" | cut -d- -f2)"
    what="$wheel"
else
    version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$src/common/version.py")"
    what="$src"
fi
venv="$P$OPT/venvs/$version"
# A box `qilu-edge update` (or a cloud roll-out) moved on is not taken back by a second run
# from the original stick: the newer version may have migrated the database.
running=""
if [ -L "$P$OPT/current" ]; then running="$(basename "$(readlink "$P$OPT/current")")"; fi
running="${running%%+*}"
if [ -n "$running" ] && [ "$running" != "$version" ] && [ "$downgrade" = 0 ] \
    && [ "$(printf '%s\n%s\n' "$running" "$version" | sort -V | tail -n1)" = "$running" ]; then
    echo "install.sh: this box runs qilu-edge $running, newer than $version here (installed by" \
         "qilu-edge update); nothing switched. Install $running or newer to repair, or go back" \
         "on purpose: --downgrade (or qilu-edge update rollback)" >&2
    exit 2
fi
if [ -x "$venv/bin/qilu-edge" ] && "$venv/bin/qilu-edge" --version 2>/dev/null | grep -q "$version"; then
    say "qilu-edge $version already installed in $venv"
else
    say "installing qilu-edge $version into $venv"
    rm -rf "$venv"
    python3 -m venv ${venv_args[@]+"${venv_args[@]}"} "$venv"
    if [ -x "$venv/bin/pip" ]; then pip=("$venv/bin/python" -m pip)
    else pip=(python3 -m pip --python "$venv/bin/python"); fi
    "${pip[@]}" install -q --disable-pip-version-check ${pip_args[@]+"${pip_args[@]}"} "$what"
    "$venv/bin/qilu-edge" --version | grep -q "$version" \
        || { echo "install.sh: the new venv does not run" >&2; exit 1; }
fi
ln -sfn "venvs/$version" "$P$OPT/.current.tmp" && mv -T "$P$OPT/.current.tmp" "$P$OPT/current"

# 5. Config: written once (the wizard and the installer own it afterwards), never overwritten.
conf="$P$ETC/edge.toml"
if [ ! -f "$conf" ]; then
    say "writing $ETC/edge.toml"
    token="$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n' | head -c 32)"
    # The config keeps only the token's hash; the token goes to a root-only file for the CLI.
    sha="$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)"
    sed -e "s|@BOX_ID@|${box_id:-box-$(hostname -s | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_\n-' '-')}|" \
        -e "s|@COMMUNITY@|${community:-unconfigured}|" \
        -e "s|@DATA_DIR@|$DATA|" -e "s|@TOKEN_SHA256@|$sha|" -e "s|@ETC@|$ETC|" \
        "$src/config/edge.install.toml" > "$conf.tmp"
    # Validated by the box's own loader before it is kept: the file is written only once, so
    # a value the daemon refuses (--community "Lixia C1") would stop it at every start.
    if ! err="$("$P$OPT/current/bin/qilu-edge" check-config -c "$conf.tmp" 2>&1)"; then
        rm -f "$conf.tmp"
        echo "install.sh: --community / --box-id make a config the box refuses; edge.toml" \
             "not written (lower-case letters, digits, _ and -, e.g. --community lixia-c1):" >&2
        echo "$err" | sed "s|$conf.tmp|$ETC/edge.toml|" >&2
        exit 2
    fi
    (umask 077 && printf '%s\n' "$token" > "$P$ETC/staff-token")
    chmod 0660 "$conf.tmp"
    mv "$conf.tmp" "$conf"
    if real; then chown "root:$grp" "$conf"; fi
else
    say "keeping $ETC/edge.toml"
fi

# 6. Mosquitto: loopback only; the box is the only client.
install -d -m 0755 "$P/etc/mosquitto/conf.d"
install -m 0644 "$src/config/mosquitto-qilu-edge.conf" "$P/etc/mosquitto/conf.d/qilu-edge.conf"

# 7. systemd units; enabled (the same symlinks `systemctl enable` makes, so an image works).
# qilu-edge-update.path starts the root qilu-edge-update.service when the sandboxed daemon
# asks for a cloud roll-out's version ([sync] update_command = qilu-edge update request).
for unit in qilu-edge.service qilu-edge-update.path qilu-edge-update.service \
            qilu-cloudsync.service; do
    install -m 0644 "$src/systemd/$unit" "$P$UNITS/$unit"
done
enable=(qilu-edge.service qilu-edge-update.path)
[ "$cloud" = 1 ] && enable+=(qilu-cloudsync.service)
if real; then
    systemctl daemon-reload
    systemctl enable mosquitto.service "${enable[@]}" >/dev/null
else
    install -d "$P$UNITS/multi-user.target.wants"
    for unit in "${enable[@]}"; do
        ln -sfn "$UNITS/$unit" "$P$UNITS/multi-user.target.wants/$unit"
    done
fi

# 8. Face models, fetched and verified by the models capability when this build has it.
bin="$P$OPT/current/bin/qilu-edge"
if [ "$models" = 1 ] && real && "$bin" models --help >/dev/null 2>&1; then
    say "fetching and verifying face models"
    "$bin" models fetch --dir "$DATA/models" && "$bin" models verify --dir "$DATA/models"
else
    say "skipping face models (${P:+throw-away root, }run: qilu-edge models fetch)"
fi

# 8b. The report text model, trained from the shipped corpus (scikit-learn, ~10-30 s; the
# daemon only loads the artefact). Without it the first report would train it.
if real && "$bin" report retrain --help >/dev/null 2>&1; then
    say "building the report text model"
    "$bin" report retrain >/dev/null || say "text model not built: the first report builds it"
fi

# 9. Start (or restart onto the new version).
if real && [ "$start" = 1 ]; then
    systemctl restart mosquitto.service
    systemctl restart "${enable[@]}"
    say "started: ${enable[*]} (systemctl status qilu-edge)"
fi

if [ -f "$P$ETC/staff-token" ]; then token_line="$(cat "$P$ETC/staff-token")"
else token_line="$(grep -m1 '^token *=' "$conf" | cut -d'"' -f2)"; fi  # an older box's plain one
cat <<EOF
==> installed qilu-edge $version${P:+ under $P}
    config   $ETC/edge.toml      data $DATA
    check    qilu-edge doctor -c $ETC/edge.toml
    installer page  http://<box-address>:8080/installer/   token: $token_line
EOF
