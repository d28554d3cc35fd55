#!/usr/bin/env bash
# Check the desktop install notes on a minimal Debian: start the bundled GUI in a real X window.
#
#   sudo packaging/check-minimal-debian.sh [--bundle DIR] [--work DIR] [--out DIR] [--release NAME]
#                                          [--packages "PKG ..."] [--without PKG]... [--with PKG]...
#
# Not part of the test suite, and never run by it: it needs root (debootstrap, chroot, mount) and the
# network to Debian's mirror (deb.debian.org), and takes a few minutes the first time.
#
# What it does: debootstrap --variant=minbase RELEASE (default bookworm) once into WORK/base; for each
# check a fresh copy WORK/run of it, with /proc, /dev and a tmpfs /tmp mounted; inside it
# `apt-get install --no-install-recommends` of xvfb (the X server itself, which a desktop has anyway)
# plus the packages of packaging/INSTALL-linux.txt (or --packages / --without / --with); the bundle
# (default dist/statcoder, from packaging/build.sh) copied to /opt/statcoder; Xvfb started inside the
# chroot; `statcoder-desktop` started there with QT_QPA_PLATFORM=xcb and QT_DEBUG_PLUGINS=1. When its
# window is on the screen, a screenshot is taken from outside the chroot over the same X socket
# (an abstract socket, shared with the host's network namespace), to OUT/window.png. LOOK at it:
# without a font the window opens with a box for every letter.
# OUT (default WORK/out) also gets app.log (Qt's plugin log), packages.txt (dpkg -l in the chroot) and
# installed.txt (what apt installed). Exit status 0: the window opened; 1: the app stopped or no
# window came.
#
# Host tools it uses: debootstrap, xwininfo (x11-utils), xwd (x11-apps), convert (imagemagick).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUNDLE="$ROOT/dist/statcoder"
WORK="/var/tmp/statcoder-minimal-debian"
OUT=""
RELEASE="bookworm"
MIRROR="http://deb.debian.org/debian"
PACKAGES_SET=0
PACKAGES=()
WITHOUT=()
WITH=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) BUNDLE="$(realpath "$2")"; shift 2 ;;
        --work) WORK="$(realpath -m "$2")"; shift 2 ;;
        --out) OUT="$(realpath -m "$2")"; shift 2 ;;
        --release) RELEASE="$2"; shift 2 ;;
        --mirror) MIRROR="$2"; shift 2 ;;
        --packages) PACKAGES_SET=1; read -r -a PACKAGES <<< "$2"; shift 2 ;;
        --without) WITHOUT+=("$2"); shift 2 ;;
        --with) WITH+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
OUT="${OUT:-$WORK/out}"

[ "$(id -u)" -eq 0 ] || { echo "needs root (debootstrap, chroot, mount)" >&2; exit 2; }
for tool in debootstrap xwininfo xwd convert; do
    command -v "$tool" >/dev/null || { echo "needs $tool on this machine" >&2; exit 2; }
done
[ -x "$BUNDLE/statcoder-desktop" ] || { echo "no bundle at $BUNDLE: run packaging/build.sh first" >&2; exit 2; }

if [ "$PACKAGES_SET" -eq 0 ]; then
    # The one `apt-get install -y ...` line of the bundle's notes (tests/packaging reads it the same way).
    read -r -a PACKAGES <<< "$(grep -o 'apt-get install -y [^`]*' "$ROOT/packaging/INSTALL-linux.txt" | head -1 \
                               | sed 's/apt-get install -y //')"
fi
KEPT=()
for package in "${PACKAGES[@]}" "${WITH[@]}"; do
    skip=0
    for left_out in "${WITHOUT[@]}"; do [ "$package" = "$left_out" ] && skip=1; done
    [ "$skip" -eq 1 ] || KEPT+=("$package")
done

BASE="$WORK/base"
RUN="$WORK/run"
ARCHIVES="$WORK/archives"   # downloaded .debs, shared by every check
mkdir -p "$WORK" "$ARCHIVES/partial" "$OUT"

if [ ! -f "$BASE/.statcoder-ready" ]; then
    rm -rf "$BASE"
    debootstrap --variant=minbase "$RELEASE" "$BASE" "$MIRROR"
    chroot "$BASE" apt-get update -q
    touch "$BASE/.statcoder-ready"
fi

XVFB_PID=""
APP_PID=""
cleanup() {
    set +e
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null
    [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null
    wait 2>/dev/null
    for mount in var/cache/apt/archives tmp dev/pts dev proc; do
        mountpoint -q "$RUN/$mount" && umount "$RUN/$mount"
    done
}
trap cleanup EXIT

rm -rf "$RUN"
cp -a "$BASE" "$RUN"
mount -t proc proc "$RUN/proc"
mount --bind /dev "$RUN/dev"
mount --bind /dev/pts "$RUN/dev/pts"
mount -t tmpfs tmpfs "$RUN/tmp"
mount --bind "$ARCHIVES" "$RUN/var/cache/apt/archives"

echo "installing: xvfb ${KEPT[*]}"
chroot "$RUN" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends xvfb "${KEPT[@]}" \
    > "$OUT/installed.txt"
chroot "$RUN" dpkg-query -W -f '${Package} ${Version}\n' > "$OUT/packages.txt"
mkdir -p "$RUN/opt"
cp -a "$BUNDLE" "$RUN/opt/statcoder"

# A display number no X server of this machine uses; below 99, where `xvfb-run -a` starts counting.
DISPLAY_NUMBER=""
for n in $(seq 40 98); do
    if [ ! -e "/tmp/.X$n-lock" ] && [ ! -e "/tmp/.X11-unix/X$n" ] && ! grep -q "@/tmp/.X11-unix/X$n\$" /proc/net/unix; then
        DISPLAY_NUMBER=$n; break
    fi
done
[ -n "$DISPLAY_NUMBER" ] || { echo "no free display number" >&2; exit 1; }
export DISPLAY=":$DISPLAY_NUMBER"

chroot "$RUN" Xvfb "$DISPLAY" -screen 0 1600x1000x24 -nolisten tcp > "$OUT/xvfb.log" 2>&1 &
XVFB_PID=$!
for _ in $(seq 1 300); do xwininfo -root >/dev/null 2>&1 && break; kill -0 "$XVFB_PID" 2>/dev/null || break; sleep 0.1; done
xwininfo -root >/dev/null 2>&1 || { echo "Xvfb did not start:"; cat "$OUT/xvfb.log"; exit 1; }

chroot "$RUN" env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 DISPLAY="$DISPLAY" QT_QPA_PLATFORM=xcb \
    QT_DEBUG_PLUGINS=1 STATCODER_DATA_DIR=/tmp/statcoder-data /opt/statcoder/statcoder-desktop > "$OUT/app.log" 2>&1 &
APP_PID=$!

# Wait for the main window ("statcoder VERSION") to be mapped, or for the app to stop.
WINDOW=""
for _ in $(seq 1 600); do
    kill -0 "$APP_PID" 2>/dev/null || break
    WINDOW="$(xwininfo -root -tree 2>/dev/null | awk '/"statcoder [0-9]/ {print $1; exit}')"
    if [ -n "$WINDOW" ] && xwininfo -id "$WINDOW" 2>/dev/null | grep -q "IsViewable"; then break; fi
    WINDOW=""
    sleep 0.1
done
if [ -z "$WINDOW" ]; then
    echo "FAILED: no statcoder window on $DISPLAY with: xvfb ${KEPT[*]}"
    grep -iE "cannot load|could not|error|abort" "$OUT/app.log" | head -20
    echo "(full log: $OUT/app.log)"
    exit 1
fi
sleep 1   # the first paint after mapping
xwd -root -silent | convert xwd:- "$OUT/window.png"
echo "OK: the window opened on the xcb platform ($DISPLAY, Debian $(cat "$RUN/etc/debian_version"))"
echo "installed: xvfb ${KEPT[*]}"
echo "screenshot: $OUT/window.png; Qt's plugin log: $OUT/app.log"
if grep -qi "cannot load" "$OUT/app.log"; then
    echo "Qt could not load these plugins (the window opened without them):"
    grep -i "cannot load" "$OUT/app.log" | sort -u
fi
