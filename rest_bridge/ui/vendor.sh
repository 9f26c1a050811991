#!/usr/bin/env bash
# Refreshes the dashboard's vendored libraries from the npm registry (run by hand, then commit):
# the page is served as these files, with no build step at install or run time.
set -euo pipefail
cd "$(dirname "$0")/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund \
    htm@3.1.1 preact@10 uplot@1.6.32 marked@18.2.1 dompurify@3.5.0 >/dev/null)
m="$work/node_modules"
cp "$m/htm/preact/standalone.module.js" htm-preact-3.1.1.mjs  # Preact + hooks + htm, one file
cp "$m/uplot/dist/uPlot.iife.min.js" uPlot-1.6.32.min.js
cp "$m/uplot/dist/uPlot.min.css" uPlot-1.6.32.min.css
cp "$m/marked/lib/marked.esm.js" marked-18.2.1.mjs
cp "$m/dompurify/dist/purify.min.js" purify-3.5.0.min.js
sed -i '/sourceMappingURL=/d' ./*.mjs ./*.js  # the maps are not shipped
for p in htm preact uplot dompurify; do cp "$m/$p/LICENSE" "licenses/$p.LICENSE"; done
cp "$m/marked/LICENSE.md" licenses/marked.LICENSE
