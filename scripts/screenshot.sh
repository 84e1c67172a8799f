#!/usr/bin/env bash
# Render a built page of the book to a PNG with headless Chromium, to look at it as a reader would.
#
# Usage: scripts/screenshot.sh [PAGE] [OUT.png] [HEIGHT]
#   PAGE    a chapter name (02_sft -> _build/html/chapters/02_sft.html), "index", or a path to an
#           .html file; default: index
#   OUT     the PNG to write; default: _build/screenshots/<page>.png
#   HEIGHT  window height in pixels (width is 1280); default: 2000
# Build the site first (make book). Needs Debian's chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

page="${1:-index}"
if [[ -f "$page" ]]; then
  html="$page"
elif [[ "$page" == "index" ]]; then
  html="_build/html/index.html"
else
  html="_build/html/chapters/${page%.html}.html"
fi
[[ -f "$html" ]] || { echo "error: $html not found (run 'make book' first)" >&2; exit 1; }
name="$(basename "${html%.html}")"
out="${2:-_build/screenshots/${name}.png}"
height="${3:-2000}"
mkdir -p "$(dirname "$out")"

chromium="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$chromium" ]] || { echo "error: no chromium found (apt-get install -y chromium)" >&2; exit 1; }

profile_dir="$(mktemp -d)"
trap 'rm -rf "$profile_dir"' EXIT
# The flags keep Chromium from reaching out to the network (background services, updates, sync).
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile_dir" --window-size="1280,${height}" \
  --virtual-time-budget=5000 --screenshot="$(realpath -m "$out")" "file://$(realpath "$html")" \
  >/dev/null 2>&1
[[ -s "$out" ]] || { echo "error: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
