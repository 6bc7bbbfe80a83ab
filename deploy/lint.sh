#!/usr/bin/env bash
# Check the import layers of docs/architecture.md on the installed package.
#
# The subpackages live in top-level folders mapped into `frontdesk` by
# setuptools' package-dir, so the source tree is not a package import-linter can
# walk. Install a copy into a scratch folder, as a wheel would lay it out, and
# lint that, from outside the checkout so the source folders do not shadow it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
.venv/bin/pip install -q --no-deps --target "$site" "$repo" >/dev/null
cd "$site" && PYTHONPATH="$site" "$repo/.venv/bin/lint-imports" "$repo/pyproject.toml"
