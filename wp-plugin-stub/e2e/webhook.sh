#!/usr/bin/env bash
# Signs and sends Standard Webhooks messages with openssl and curl, independently
# of the plugin's PHP code, to check the receiver from the outside.
#
#   webhook.sh sign SECRET ID TIMESTAMP BODY      -> prints "v1,<base64>"
#   webhook.sh post URL ID TIMESTAMP SIGNATURE BODY -> prints "<http status> <response body>"
#
# An empty SIGNATURE sends no webhook-signature header.
set -euo pipefail

cmd="${1:-}"
shift || true
case "$cmd" in
sign)
	secret="$1" id="$2" ts="$3" body="$4"
	# The HMAC key is the base64-decoded part after "whsec_".
	hexkey="$(printf '%s' "${secret#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
	mac="$(printf '%s.%s.%s' "$id" "$ts" "$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64 -w0)"
	printf 'v1,%s\n' "$mac"
	;;
post)
	url="$1" id="$2" ts="$3" sig="$4" body="$5"
	headers=(-H 'Content-Type: application/json' -H "webhook-id: $id" -H "webhook-timestamp: $ts")
	if [ -n "$sig" ]; then
		headers+=(-H "webhook-signature: $sig")
	fi
	out="$(mktemp)"
	code="$(curl -sS -o "$out" -w '%{http_code}' --max-time 15 -X POST "${headers[@]}" --data-binary "$body" "$url")"
	printf '%s %s\n' "$code" "$(cat "$out")"
	rm -f "$out"
	;;
*)
	echo "usage: webhook.sh sign SECRET ID TS BODY | post URL ID TS SIGNATURE BODY" >&2
	exit 2
	;;
esac
