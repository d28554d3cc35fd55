#!/usr/bin/env bash
# Build the one-folder bundle dist/statcoder/ and the archive dist/statcoder-VERSION-linux-ARCH.tar.gz.
#
#   packaging/build.sh [--model FILE.gguf]... [--dist DIR]
#
# PYTHON selects the interpreter whose packages are bundled (default: .venv/bin/python, else python3);
# it needs the app installed with the [packaging] extra: pip install -e ".[packaging]".
# --model bundles a GGUF file (repeatable): first start registers it, no separate model install.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIST="$ROOT/dist"
MODEL_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL_ARGS+=(--model "$(realpath "$2")"); shift 2 ;;
        --dist) DIST="$(realpath -m "$2")"; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -c "import PyInstaller" 2>/dev/null || {
    echo "PyInstaller is missing: $PYTHON -m pip install -e \"$ROOT[packaging]\"" >&2; exit 1; }

cd "$ROOT"
# A llama.cpp built with -march=native would stop with "illegal instruction" on other PCs (and its AMX
# kernel crashes on CPUs that have AMX): refuse to bundle one (engine/llm/portability.py says how to rebuild).
PYTHONPATH="$ROOT" "$PYTHON" -m engine.llm.portability
VERSION="$(PYTHONPATH="$ROOT" "$PYTHON" -c 'import engine; print(engine.__version__)')"
ARCHIVE="$DIST/statcoder-$VERSION-linux-$(uname -m).tar.gz"
START=$(date +%s)
SPEC_ARGS=()
if [ ${#MODEL_ARGS[@]} -gt 0 ]; then SPEC_ARGS=(-- "${MODEL_ARGS[@]}"); fi
PYTHONPATH="$ROOT" "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$ROOT/build/pyinstaller" \
    packaging/statcoder.spec "${SPEC_ARGS[@]}"
BUILT=$(date +%s)

# The system packages the desktop app needs, where the person installing the bundle looks first.
cp packaging/INSTALL-linux.txt "$DIST/statcoder/INSTALL.txt"

# Refuse to ship a bundle whose CLI cannot start: the cheapest check that catches missing libraries.
"$DIST/statcoder/statcoder" --version

rm -f "$ARCHIVE"
tar -C "$DIST" --owner=0 --group=0 --numeric-owner -czf "$ARCHIVE" statcoder
(cd "$DIST" && sha256sum "$(basename "$ARCHIVE")" > "$(basename "$ARCHIVE").sha256")
DONE=$(date +%s)

echo "bundle:  $DIST/statcoder ($(du -sh "$DIST/statcoder" | cut -f1))"
echo "archive: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)), sha256 in $(basename "$ARCHIVE").sha256"
echo "time:    PyInstaller $((BUILT - START)) s, archive $((DONE - BUILT)) s"
