#!/usr/bin/env bash
# Provide Asterisk 22 for callcontrol.
#
# Prints the launcher to use ("native" or the chroot folder) on its last line.
#  1. an `asterisk` on PATH that reports 22.x is used as it is;
#  2. otherwise a Debian sid root is built once with debootstrap under
#     $CALLCONTROL_CACHE (default ~/.cache/callcontrol) and Debian's asterisk installed in it.
# Idempotent: a finished root (marker file) is reused. Needs root for debootstrap/chroot.
set -euo pipefail

CACHE=${CALLCONTROL_CACHE:-$HOME/.cache/callcontrol}
ROOT=$CACHE/asterisk-root
MARK=$ROOT/.callcontrol-ready

log() { printf 'provision-asterisk: %s\n' "$*" >&2; }

if command -v asterisk >/dev/null 2>&1 && asterisk -V 2>/dev/null | grep -q '^Asterisk 22\.'; then
    log "using $(asterisk -V) from PATH"
    echo native
    exit 0
fi

mount_root() {
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    if ! mountpoint -q "$ROOT/dev"; then
        mount --rbind /dev "$ROOT/dev"
        mount --make-rslave "$ROOT/dev"
    fi
}

if [ -f "$MARK" ]; then
    mount_root
    echo "$ROOT"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    log "building the Asterisk root needs root (debootstrap, chroot)"; exit 1
fi
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }

# The Debian mirror the host's apt already uses: no host name is written into the project.
MIRROR=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$MIRROR" ]; then
    MIRROR=$(grep -hsE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
[ -n "$MIRROR" ] || { log "cannot find the host's Debian mirror in /etc/apt"; exit 1; }

mkdir -p "$CACHE"
if [ -d "$ROOT" ]; then
    # A half-built root from an interrupted run: unmount before removing (the host's /dev is
    # bind-mounted inside; deleting through it would delete the host's /dev).
    umount -R "$ROOT/dev" 2>/dev/null || true
    umount -R "$ROOT/proc" 2>/dev/null || true
    if findmnt -rn -o TARGET | grep -q "^$ROOT/"; then
        log "refusing to remove $ROOT: something is still mounted below it"; exit 1
    fi
    rm -rf --one-file-system "$ROOT"
fi
log "debootstrap sid from $MIRROR into $ROOT (about a minute)"
debootstrap --variant=minbase sid "$ROOT.tmp" "$MIRROR" >&2 || { rm -rf --one-file-system "$ROOT.tmp"; exit 1; }
mv "$ROOT.tmp" "$ROOT"
echo 'Acquire::Check-Valid-Until "false";' > "$ROOT/etc/apt/apt.conf.d/99no-valid-until"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
cp /etc/hosts "$ROOT/etc/hosts"
mount_root
chroot "$ROOT" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -qq --no-install-recommends asterisk asterisk-core-sounds-en-gsm sox >&2
chroot "$ROOT" apt-get clean
VERSION=$(chroot "$ROOT" /usr/sbin/asterisk -V)
case "$VERSION" in
    "Asterisk 22."*) log "installed $VERSION" ;;
    *) log "Debian sid now ships $VERSION, not 22.x: pin the version in this script"; exit 1 ;;
esac
touch "$MARK"
echo "$ROOT"
