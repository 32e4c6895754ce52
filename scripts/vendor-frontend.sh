#!/usr/bin/env bash
# Refresh the vendored front-end libraries from the npm registry at their pinned versions.
# The files are committed (the site must work offline and under a strict CSP, no CDN);
# this script is how they got there. Run it after changing a version below.
set -euo pipefail
SHAKA=5.2.12
HLSJS=1.6.19
cd "$(dirname "$0")/.."
dest=transcoding/static/transcoding/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "shaka-player@$SHAKA" "hls.js@$HLSJS" >/dev/null)

tar -xzf "$work/shaka-player-$SHAKA.tgz" -C "$work"
mkdir -p "$dest/shaka-player-$SHAKA"
cp "$work/package/dist/shaka-player.ui.js" "$work/package/LICENSE" "$dest/shaka-player-$SHAKA/"
# The UI stylesheet names a Roboto font on a Google CDN; drop that @font-face so nothing is
# fetched from outside (the controls fall back to the system font).
sed -E 's/@font-face\{[^}]*fonts\.gstatic\.com[^}]*\}//g' "$work/package/dist/controls.css" \
  | sed -E 's#/\*\# sourceMappingURL=[^*]*\*/##' > "$dest/shaka-player-$SHAKA/controls.css"
sed -i -E 's#//\# sourceMappingURL=.*$##' "$dest/shaka-player-$SHAKA/shaka-player.ui.js"
rm -rf "$work/package"

tar -xzf "$work/hls.js-$HLSJS.tgz" -C "$work"
mkdir -p "$dest/hls.js-$HLSJS"
cp "$work/package/dist/hls.min.js" "$work/package/LICENSE" "$dest/hls.js-$HLSJS/"
sed -i -E 's#//\# sourceMappingURL=.*$##' "$dest/hls.js-$HLSJS/hls.min.js"
rm -rf "$work/package"

echo "vendored shaka-player $SHAKA and hls.js $HLSJS into $dest"
