<?php
/**
 * Standard Webhooks (v1) signatures: verify what keyd sends.
 *
 * These functions use plain PHP only, no WordPress API, so they can be unit
 * tested without a WordPress install and copied into any PHP project.
 *
 * The scheme (https://www.standardwebhooks.com/, spec v1):
 * - the secret looks like "whsec_<base64>"; the HMAC key is the base64-decoded
 *   part after the prefix;
 * - the signed content is "<webhook-id>.<webhook-timestamp>.<raw body>";
 * - the webhook-signature header holds one or more space-separated entries
 *   "v1,<base64 HMAC-SHA256>" (several while a secret is being rotated);
 * - the timestamp must be within a tolerance of now (5 minutes) so that a
 *   captured message cannot be replayed later.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/** How far (seconds) a webhook-timestamp may be from our clock, either way. */
const KEYD_STUB_WEBHOOK_TOLERANCE = 300;

/** Verification outcomes. */
const KEYD_STUB_SIG_VALID         = 'valid';
const KEYD_STUB_SIG_BAD_SIGNATURE = 'bad_signature';
const KEYD_STUB_SIG_BAD_TIMESTAMP = 'bad_timestamp';
const KEYD_STUB_SIG_BAD_SECRET    = 'bad_secret';

/**
 * Decodes a "whsec_..." secret into the raw HMAC key.
 *
 * A bare base64 secret (without the prefix) is accepted too, as the reference
 * libraries do.
 *
 * @param string $secret The webhook secret as keyd showed it.
 * @return string|null The raw key, or null when the secret is not valid base64.
 */
function keyd_stub_webhook_secret_key( $secret ) {
	$secret = trim( (string) $secret );
	if ( 0 === strpos( $secret, 'whsec_' ) ) {
		$secret = substr( $secret, strlen( 'whsec_' ) );
	}
	if ( '' === $secret ) {
		return null;
	}
	// Only the base64 alphabet: base64_decode() would silently skip spaces,
	// so a mangled paste would be half-used instead of reported.
	if ( ! preg_match( '#^[A-Za-z0-9+/]+={0,2}$#', $secret ) ) {
		return null;
	}
	$key = base64_decode( $secret, true );
	if ( false === $key || '' === $key ) {
		return null;
	}
	return $key;
}

/**
 * Computes the signature header value for a message: "v1,<base64>".
 *
 * Used by the tests and handy for sending test messages to the receiver.
 *
 * @param string $secret    The "whsec_..." secret.
 * @param string $msg_id    The webhook-id header.
 * @param string $timestamp The webhook-timestamp header (unix seconds).
 * @param string $body      The raw request body, byte for byte.
 * @return string|null The header value, or null for an unusable secret.
 */
function keyd_stub_webhook_sign( $secret, $msg_id, $timestamp, $body ) {
	$key = keyd_stub_webhook_secret_key( $secret );
	if ( null === $key ) {
		return null;
	}
	$signed = $msg_id . '.' . $timestamp . '.' . $body;
	return 'v1,' . base64_encode( hash_hmac( 'sha256', $signed, $key, true ) );
}

/**
 * Verifies a Standard Webhooks message.
 *
 * The signature is checked before the timestamp so that only a sender that
 * knows the secret learns whether its clock is off.
 *
 * @param string   $secret           The "whsec_..." secret.
 * @param string   $msg_id           The webhook-id header.
 * @param string   $timestamp        The webhook-timestamp header (unix seconds).
 * @param string   $body             The raw request body, exactly as received:
 *                                   re-encoding JSON would change the bytes.
 * @param string   $signature_header The webhook-signature header.
 * @param int|null $now              The current unix time; null means time().
 *                                   Tests pass a fixed value.
 * @param int      $tolerance        Allowed clock difference in seconds.
 * @return string One of the KEYD_STUB_SIG_* constants.
 */
function keyd_stub_webhook_verify( $secret, $msg_id, $timestamp, $body, $signature_header, $now = null, $tolerance = KEYD_STUB_WEBHOOK_TOLERANCE ) {
	$key = keyd_stub_webhook_secret_key( $secret );
	if ( null === $key ) {
		return KEYD_STUB_SIG_BAD_SECRET;
	}

	$msg_id           = (string) $msg_id;
	$timestamp        = (string) $timestamp;
	$signature_header = (string) $signature_header;
	if ( '' === $msg_id || '' === $signature_header ) {
		return KEYD_STUB_SIG_BAD_SIGNATURE;
	}

	$signed   = $msg_id . '.' . $timestamp . '.' . (string) $body;
	$expected = base64_encode( hash_hmac( 'sha256', $signed, $key, true ) );

	$matched = false;
	// Several signatures may be present (one per live secret during a
	// rotation, or future versions). Any matching v1 entry is enough; entries
	// of other versions are ignored.
	foreach ( preg_split( '/\s+/', trim( $signature_header ) ) as $entry ) {
		$parts = explode( ',', $entry, 2 );
		if ( 2 !== count( $parts ) || 'v1' !== $parts[0] ) {
			continue;
		}
		// hash_equals takes the same time wherever the strings differ, so the
		// answer time leaks nothing about how much of a guess was right.
		if ( hash_equals( $expected, $parts[1] ) ) {
			$matched = true;
			break;
		}
	}
	if ( ! $matched ) {
		return KEYD_STUB_SIG_BAD_SIGNATURE;
	}

	if ( ! preg_match( '/^[0-9]{1,12}$/', $timestamp ) ) {
		return KEYD_STUB_SIG_BAD_TIMESTAMP;
	}
	$now = null === $now ? time() : (int) $now;
	if ( abs( $now - (int) $timestamp ) > $tolerance ) {
		return KEYD_STUB_SIG_BAD_TIMESTAMP;
	}

	return KEYD_STUB_SIG_VALID;
}
