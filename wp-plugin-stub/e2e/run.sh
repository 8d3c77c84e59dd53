#!/usr/bin/env bash
# End-to-end test of the WordPress stub: a real WordPress (Debian's package) on
# PHP's built-in server, a private MariaDB, headless Chromium driven by
# playwright-core, and a real keyd.
#
#   bash wp-plugin-stub/e2e/run.sh
#
# Environment:
#   KEYD_BIN          keyd binary (default: build/keyd at the repository root)
#   E2E_WITHOUT_KEYD  1 = run only the steps that need no keyd (page, nonce,
#                     malformed key, unreachable keyd, webhook signatures)
#   WP_PORT, KEYD_PORT  fixed ports instead of free ones (fails if busy)
#   E2E_KEEP          1 = keep the temporary database directory for inspection
#
# Output: build/e2e/logs/ (every server's log) and build/e2e/screenshots/.
# Everything started here runs in its own process group and is stopped on exit,
# whether the run passed or not.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/build/e2e"
LOGS="$OUT/logs"
SHOTS="$OUT/screenshots"
KEYD_BIN="${KEYD_BIN:-$ROOT/build/keyd}"
case "$KEYD_BIN" in /*) ;; *) KEYD_BIN="$ROOT/$KEYD_BIN" ;; esac
E2E_WITHOUT_KEYD="${E2E_WITHOUT_KEYD:-0}"
WP_PLUGINS=/var/lib/wordpress/wp-content/plugins
WP_MU_PLUGINS=/var/lib/wordpress/wp-content/mu-plugins
WP_CONFIG=/etc/wordpress/config-127.0.0.1.php

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
	printf '[e2e %s] FAIL: %s\n' "$(date +%H:%M:%S)" "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# Process groups started here, stopped in reverse order on exit.
PGIDS=()
RUN_DIR=""
cleanup() {
	local status=$?
	set +e
	for ((i = ${#PGIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM -- "-${PGIDS[i]}" 2>/dev/null
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
		log "logs: $LOGS  screenshots: $SHOTS"
	fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD under setsid (its own process group) with
# its output in $LOGS/NAME.log. Not being a group leader, the background
# child's setsid does not fork, so $! is the new group's id.
start() {
	local name="$1"
	shift
	setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
	PGIDS+=("$!")
}

# wait_until SECONDS DESCRIPTION CMD...: polls CMD until it succeeds.
wait_until() {
	local timeout="$1" what="$2"
	shift 2
	local end=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= end)); then
			die "timed out after ${timeout}s waiting for $what"
		fi
		sleep 0.3
	done
}

# wait_http NAME SECONDS URL: polls URL until it answers 2xx; stops early when
# the server NAME (the last one started) has exited.
wait_http() {
	local name="$1" timeout="$2" url="$3" pgid="${PGIDS[-1]}"
	local end=$((SECONDS + timeout))
	until curl -sf -o /dev/null --max-time 2 "$url"; do
		kill -0 -- "-$pgid" 2>/dev/null || die "$name exited before answering $url, see $LOGS/$name.log"
		((SECONDS < end)) || die "timed out after ${timeout}s waiting for $url, see $LOGS/$name.log"
		sleep 0.3
	done
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	php -r '$s = stream_socket_server("tcp://127.0.0.1:0"); $n = stream_socket_get_name($s, false); echo substr($n, strrpos($n, ":") + 1);'
}

# pick_port VAR: the port in $VAR if set (must be free), else a free one.
pick_port() {
	local var="$1" port="${!1:-}"
	if [ -n "$port" ]; then
		port_busy "$port" && die "port $port (from $var) is busy: something else listens on 127.0.0.1:$port"
	else
		port="$(free_port)"
	fi
	printf -v "$var" '%s' "$port"
}

random_token() { head -c 512 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c "$1"; }

mkdir -p "$LOGS" "$SHOTS"
rm -f "$LOGS"/*.log "$SHOTS"/*.png

# ---------------------------------------------------------------------------
log "1. packages"
need=()
for pkg in wordpress mariadb-server php-cli php-mysql php-curl chromium phpunit curl openssl; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
	log "installing: ${need[*]}"
	apt-get update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >"$LOGS/apt.log" 2>&1 || die "apt-get install failed, see $LOGS/apt.log"
fi

log "2. PHP unit tests"
bash "$HERE/../tests/run.sh"

log "3. playwright-core (npm ci, no browser download)"
NODE_DIR="$OUT/node"
lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$NODE_DIR/.lock-sum" 2>/dev/null)" != "$lock_sum" ] || [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
	rm -rf "$NODE_DIR"
	mkdir -p "$NODE_DIR"
	cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
	(cd "$NODE_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund --ignore-scripts >"$LOGS/npm.log" 2>&1) || die "npm ci failed, see $LOGS/npm.log"
	echo "$lock_sum" >"$NODE_DIR/.lock-sum"
fi

if [ "$E2E_WITHOUT_KEYD" != 1 ] && [ ! -x "$KEYD_BIN" ]; then
	die "no keyd binary at $KEYD_BIN: build it (go build -o build/keyd ./cmd/keyd) or set KEYD_BIN; E2E_WITHOUT_KEYD=1 runs only the steps that need no keyd"
fi

log "4. ports"
pick_port WP_PORT
pick_port KEYD_PORT
DEAD_PORT="$(free_port)" # nothing listens there: the "keyd unreachable" case
[ "$WP_PORT" != "$KEYD_PORT" ] || die "WP_PORT and KEYD_PORT are the same ($WP_PORT)"
WP_URL="http://127.0.0.1:$WP_PORT"
KEYD_URL="http://127.0.0.1:$KEYD_PORT"
log "WordPress $WP_URL, keyd $KEYD_URL, dead port $DEAD_PORT"

# ---------------------------------------------------------------------------
log "5. MariaDB (private instance on a unix socket, fresh data directory)"
RUN_DIR="$(mktemp -d /tmp/keyd-e2e.XXXXXX)"
chmod 755 "$RUN_DIR"
SOCK="$RUN_DIR/mysqld.sock"
mariadb-install-db --no-defaults --datadir="$RUN_DIR/mysql" --user=root --skip-test-db \
	--auth-root-authentication-method=socket >"$LOGS/mariadb-install.log" 2>&1 ||
	die "mariadb-install-db failed, see $LOGS/mariadb-install.log"
start mariadb /usr/sbin/mariadbd --no-defaults --user=root --datadir="$RUN_DIR/mysql" \
	--socket="$SOCK" --pid-file="$RUN_DIR/mysqld.pid" --skip-networking --log-error="$LOGS/mariadb.err"
wait_until 60 "MariaDB" mariadb-admin --socket="$SOCK" ping
DB_PASS="$(random_token 24)"
mariadb --socket="$SOCK" -u root <<SQL || die "could not create the database"
CREATE DATABASE keyd_e2e CHARACTER SET utf8mb4;
CREATE USER 'keyd_e2e'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON keyd_e2e.* TO 'keyd_e2e'@'localhost';
SQL

log "6. WordPress configuration and plugin"
salts=""
for name in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
	salts+="define( '$name', '$(random_token 64)' );"$'\n'
done
install -d /etc/wordpress
cat >"$WP_CONFIG" <<PHP
<?php
// Written by wp-plugin-stub/e2e/run.sh for one test run.
define( 'DB_NAME', 'keyd_e2e' );
define( 'DB_USER', 'keyd_e2e' );
define( 'DB_PASSWORD', '$DB_PASS' );
define( 'DB_HOST', 'localhost:$SOCK' );
$salts
define( 'WP_HOME', '$WP_URL' );
define( 'WP_SITEURL', '$WP_URL' );
define( 'WP_CONTENT_DIR', '/var/lib/wordpress/wp-content' );
define( 'DISABLE_WP_CRON', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true ); // loopback stays reachable
// Errors go to a log, never into pages; the run fails if the plugin logs any.
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_DISPLAY', false );
define( 'WP_DEBUG_LOG', '$LOGS/wp-debug.log' );
// The browser steps put KEYD_* constants here to test the overrides.
if ( file_exists( '$RUN_DIR/wp-config-extra.php' ) ) {
	require '$RUN_DIR/wp-config-extra.php';
}
PHP
install -d "$WP_PLUGINS" "$WP_MU_PLUGINS"
ln -sfn "$ROOT/wp-plugin-stub" "$WP_PLUGINS/keyd-stub"
cat >"$WP_MU_PLUGINS/keyd-e2e-no-mail.php" <<'PHP'
<?php
// There is no sendmail on the test machine: pretend every mail was sent.
add_filter( 'pre_wp_mail', '__return_true' );
PHP

log "7. php -S on $WP_URL"
# More than one worker: keyd posts webhooks back to the site while the site
# may be waiting on its own request to keyd.
start php-server env PHP_CLI_SERVER_WORKERS=4 php -d log_errors=1 -d "error_log=$LOGS/php-errors.log" \
	-S "127.0.0.1:$WP_PORT" -t /usr/share/wordpress "$HERE/router.php"
wait_http php-server 30 "$WP_URL/wp-login.php"

log "8. install WordPress, activate the plugin"
WP_USER=admin
WP_PASS="$(random_token 24)"
(cd /usr/share/wordpress && php "$HERE/wp-setup.php" "127.0.0.1:$WP_PORT" "$WP_USER" "$WP_PASS") >"$LOGS/wp-setup.log" 2>&1 ||
	die "WordPress set-up failed, see $LOGS/wp-setup.log"
curl -sf -o /dev/null --max-time 10 "$WP_URL/wp-json/" || die "the REST API does not answer at $WP_URL/wp-json/"

# ---------------------------------------------------------------------------
KEYD_ADMIN_TOKEN=""
KEYD_PGID=""
if [ "$E2E_WITHOUT_KEYD" != 1 ]; then
	log "9. keyd ($KEYD_BIN) on $KEYD_URL"
	KEYD_ADMIN_TOKEN="$(random_token 48)"
	install -d "$RUN_DIR/keyd"
	start keyd env KEYD_ADMIN_TOKEN="$KEYD_ADMIN_TOKEN" KEYD_WEBHOOK_ALLOW_PRIVATE=1 \
		"$KEYD_BIN" serve --addr "127.0.0.1:$KEYD_PORT" --db "$RUN_DIR/keyd/keyd.db" --test-keys
	wait_http keyd 30 "$KEYD_URL/healthz"
	KEYD_PGID="${PGIDS[-1]}" # the scenario stops and resumes keyd (offline grace)
else
	log "9. keyd: skipped (E2E_WITHOUT_KEYD=1)"
fi

log "10. browser steps"
USER_DATA_DIR="$RUN_DIR/chromium-profile"
mkdir -p "$USER_DATA_DIR"
timeout 600 env \
	E2E_NODE_MODULES="$NODE_DIR/node_modules" \
	E2E_USER_DATA_DIR="$USER_DATA_DIR" \
	E2E_SCREENSHOTS="$SHOTS" \
	E2E_WEBHOOK_SH="$HERE/webhook.sh" \
	E2E_WP_CONFIG_EXTRA="$RUN_DIR/wp-config-extra.php" \
	WP_URL="$WP_URL" WP_USER="$WP_USER" WP_PASS="$WP_PASS" \
	DEAD_URL="http://127.0.0.1:$DEAD_PORT" \
	KEYD_URL="$KEYD_URL" KEYD_ADMIN_TOKEN="$KEYD_ADMIN_TOKEN" KEYD_PGID="$KEYD_PGID" \
	node "$HERE/scenario.cjs" || die "browser steps failed (screenshots in $SHOTS)"

if [ "$E2E_WITHOUT_KEYD" != 1 ]; then
	log "10b. ShortPixel-style key check (compat/spio-to-keyd.php) against keyd"
	cp "$ROOT/wp-plugin-stub/compat/spio-to-keyd.php" "$WP_MU_PLUGINS/keyd-spio-to-keyd.php"
	SPIO_SITE_PASS="site-pass-$(random_token 16)"
	(cd /usr/share/wordpress && env KEYD_URL="$KEYD_URL" KEYD_ADMIN_TOKEN="$KEYD_ADMIN_TOKEN" SPIO_SITE_PASS="$SPIO_SITE_PASS" \
		php "$HERE/spio-check.php" "127.0.0.1:$WP_PORT") >"$LOGS/spio-check.log" 2>&1 ||
		die "ShortPixel-style check failed, see $LOGS/spio-check.log"
	rm -f "$WP_MU_PLUGINS/keyd-spio-to-keyd.php"
	# The site's HTTP password went to keyd in every check; keyd keeps it nowhere.
	if grep -rqF "$SPIO_SITE_PASS" "$LOGS/keyd.log" "$RUN_DIR/keyd"; then
		die "keyd kept the site's HTTP password (log or database)"
	fi
fi

log "11. uninstall removes everything the plugin stored"
(cd /usr/share/wordpress && php "$HERE/wp-uninstall-check.php" "127.0.0.1:$WP_PORT") >"$LOGS/wp-uninstall.log" 2>&1 ||
	die "uninstall check failed, see $LOGS/wp-uninstall.log"

log "12. PHP errors from the plugin"
if grep -hE 'keyd-stub|wp-plugin-stub' "$LOGS/wp-debug.log" "$LOGS/php-errors.log" 2>/dev/null; then
	die "the plugin logged PHP errors, warnings or notices (above)"
fi

if [ "$E2E_WITHOUT_KEYD" = 1 ]; then
	log "PASS (without keyd: the keyd steps did not run)"
else
	log "PASS"
fi
