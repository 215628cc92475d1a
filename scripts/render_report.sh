#!/usr/bin/env bash
# Render an evaluation report in headless Chromium and save a screenshot to look at.
# Usage: scripts/render_report.sh REPORT_DIR/report.html [OUT.png] [HEIGHT_PX]
# Needs Chromium (Debian/Ubuntu: apt-get update && apt-get install -y chromium).
set -euo pipefail
page="${1:?usage: scripts/render_report.sh REPORT_DIR/report.html [OUT.png] [HEIGHT_PX]}"
out="${2:-/tmp/lymphonet_report.png}"
height="${3:-4200}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "chromium not found: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size="1300,${height}" --screenshot="$out" "$url" 2>/dev/null
echo "screenshot: $out"
