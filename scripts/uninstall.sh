#!/usr/bin/env bash
# Remove Qilu Edge from a box. Keeps the config (/etc/qilu-edge) and the data
# (/var/lib/qilu-edge: database, backups, content) unless --purge is given. Idempotent.
#
#   sudo bash scripts/uninstall.sh            # software and units only
#   sudo bash scripts/uninstall.sh --purge    # also config, data and the system user
#   bash scripts/uninstall.sh --prefix DIR    # a throw-away root made by install.sh --prefix
set -euo pipefail

prefix="" purge=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2%/}"; shift 2 ;;
        --purge) purge=1; shift ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
P="$prefix"
UNITS=/etc/systemd/system
units=(qilu-edge-update.path qilu-edge-update.service qilu-edge.service qilu-cloudsync.service)
say() { echo "==> $*"; }

if [ -z "$P" ]; then
    [ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root (sudo)" >&2; exit 1; }
    for u in "${units[@]}"; do
        if systemctl list-unit-files "$u" >/dev/null 2>&1; then
            systemctl disable --now "$u" >/dev/null 2>&1 || true
        fi
    done
fi
for u in "${units[@]}"; do
    rm -f "$P$UNITS/$u" "$P$UNITS/multi-user.target.wants/$u"
done
[ -z "$P" ] && systemctl daemon-reload
say "removed units: ${units[*]}"

rm -f "$P/etc/mosquitto/conf.d/qilu-edge.conf"
[ -z "$P" ] && systemctl try-restart mosquitto.service 2>/dev/null || true
rm -rf "$P/opt/qilu-edge"
say "removed /opt/qilu-edge and the mosquitto listener"

if [ "$purge" = 1 ]; then
    rm -rf "$P/etc/qilu-edge" "$P/var/lib/qilu-edge" "$P/var/lib/qilu-cloudsync"
    if [ -z "$P" ] && id qilu-edge >/dev/null 2>&1; then userdel qilu-edge; fi
    say "purged config, data and the qilu-edge user"
else
    say "kept config /etc/qilu-edge and data /var/lib/qilu-edge (--purge removes them)"
fi
