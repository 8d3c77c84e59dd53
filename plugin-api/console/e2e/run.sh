#!/usr/bin/env bash
# Browser test of the owner console: a real keyd, headless Chromium (Debian's
# package) driven by playwright-core, axe-core on every page, and a webhook
# receiver run by the scenario.
#
#   bash plugin-api/console/e2e/run.sh
#
# Environment:
#   KEYD_BIN   keyd binary (default: build/keyd at the repository root)
#   E2E_KEEP   1 = keep the temporary directory (database, browser profile)
#
# Output: build/e2e/console/ (screenshots at 1280 and 390 px wide) and
# build/e2e/console/logs/. Everything started here runs in its own process
# group and is stopped on exit, whether the run passed or not.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="$ROOT/build/e2e/console"
LOGS="$OUT/logs"
KEYD_BIN="${KEYD_BIN:-$ROOT/build/keyd}"
case "$KEYD_BIN" in /*) ;; *) KEYD_BIN="$ROOT/$KEYD_BIN" ;; esac

log() { printf '[console-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
	printf '[console-e2e %s] FAIL: %s\n' "$(date +%H:%M:%S)" "$*" >&2
	exit 1
}

PGIDS=()
RUN_DIR=""
cleanup() {
	local status=$?
	set +e
	for pgid in "${PGIDS[@]}"; do
		kill -TERM -- "-$pgid" 2>/dev/null
	done
	for pgid in "${PGIDS[@]}"; do
		for _ in $(seq 1 50); do
			kill -0 -- "-$pgid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pgid" 2>/dev/null
	done
	if [ -n "$RUN_DIR" ] && [ "${E2E_KEEP:-0}" != 1 ]; then
		rm -rf "$RUN_DIR"
	fi
	if [ $status -ne 0 ]; then
		log "logs: $LOGS  screenshots: $OUT"
	fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$LOGS"
rm -f "$LOGS"/*.log "$OUT"/*.png

log "1. packages"
need=()
for pkg in chromium curl; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
	log "installing: ${need[*]}"
	apt-get update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >"$LOGS/apt.log" 2>&1 || die "apt-get install failed, see $LOGS/apt.log"
fi

log "2. playwright-core and axe-core (npm ci, no browser download)"
NODE_DIR="$ROOT/build/e2e/console-node"
lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$NODE_DIR/.lock-sum" 2>/dev/null)" != "$lock_sum" ] || [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
	rm -rf "$NODE_DIR"
	mkdir -p "$NODE_DIR"
	cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
	(cd "$NODE_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund --ignore-scripts >"$LOGS/npm.log" 2>&1) || die "npm ci failed, see $LOGS/npm.log"
	echo "$lock_sum" >"$NODE_DIR/.lock-sum"
fi

[ -x "$KEYD_BIN" ] || die "no keyd binary at $KEYD_BIN: build it (make build) or set KEYD_BIN"

free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'; }

RUN_DIR="$(mktemp -d /tmp/keyd-console-e2e.XXXXXX)"
KEYD_PORT="$(free_port)"
KEYD_URL="http://127.0.0.1:$KEYD_PORT"
ADMIN_TOKEN="$(head -c 512 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 48)"

log "3. keyd ($KEYD_BIN) on $KEYD_URL"
setsid env KEYD_ADMIN_TOKEN="$ADMIN_TOKEN" KEYD_WEBHOOK_ALLOW_PRIVATE=1 \
	"$KEYD_BIN" serve --addr "127.0.0.1:$KEYD_PORT" --db "$RUN_DIR/keyd.db" >"$LOGS/keyd.log" 2>&1 </dev/null &
PGIDS+=("$!")
end=$((SECONDS + 30))
until curl -sf -o /dev/null --max-time 2 "$KEYD_URL/healthz"; do
	kill -0 -- "-${PGIDS[-1]}" 2>/dev/null || die "keyd exited, see $LOGS/keyd.log"
	((SECONDS < end)) || die "keyd did not answer within 30s, see $LOGS/keyd.log"
	sleep 0.3
done

log "4. browser steps"
mkdir -p "$RUN_DIR/chromium-profile"
timeout 600 env \
	E2E_NODE_MODULES="$NODE_DIR/node_modules" \
	E2E_USER_DATA_DIR="$RUN_DIR/chromium-profile" \
	E2E_SCREENSHOTS="$OUT" \
	E2E_SECRETS_FILE="$RUN_DIR/secrets.txt" \
	KEYD_URL="$KEYD_URL" KEYD_ADMIN_TOKEN="$ADMIN_TOKEN" \
	node "$HERE/scenario.cjs" || die "browser steps failed (screenshots in $OUT)"

# No key or secret the scenario saw may be in keyd's log.
[ -s "$RUN_DIR/secrets.txt" ] || die "the scenario recorded no keys"
if grep -qFf "$RUN_DIR/secrets.txt" "$LOGS/keyd.log"; then
	die "keyd logged a key or secret"
fi
log "passed; screenshots in $OUT"
