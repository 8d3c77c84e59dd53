#!/usr/bin/env bash
# Runs the plugin's PHP unit tests (signature check, event matching).
# Usage: bash wp-plugin-stub/tests/run.sh   (from anywhere)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v phpunit >/dev/null 2>&1; then
	echo "tests: installing phpunit (Debian package)" >&2
	apt-get update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq phpunit php-cli >/dev/null
fi

# Every PHP file of the plugin must at least parse.
for f in "$here"/../*.php "$here"/../includes/*.php "$here"/../compat/*.php "$here"/../e2e/*.php; do
	php -l "$f" >/dev/null
done

exec phpunit -c "$here/phpunit.xml" "$@"
