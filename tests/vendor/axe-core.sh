#!/usr/bin/env bash
# Vendor axe-core for the browser tests (tests/a11y.py): the pinned version's minified build, its
# licence and its third-party notices, from the npm registry. Tests only: nothing here is served to
# users. To upgrade, change VERSION and run this script (it needs npm); commit the result.
#
#   tests/vendor/axe-core.sh
set -euo pipefail
VERSION=4.14.1
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "axe-core@$VERSION" >/dev/null && tar xzf "axe-core-$VERSION.tgz")
mkdir -p "$here/axe-core"
for file in axe.min.js LICENSE LICENSE-3RD-PARTY.txt package.json; do
  cp "$work/package/$file" "$here/axe-core/$file"
done
echo "axe-core $VERSION vendored into $here/axe-core"
