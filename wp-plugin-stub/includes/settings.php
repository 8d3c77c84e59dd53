<?php
/**
 * Stored settings and state, and the wp-config.php constants that override them.
 *
 * Options (all removed by uninstall.php):
 * - keyd_stub_settings: what the site owner typed (keyd URL, API key, webhook
 *   secret). Registered with register_setting() so WordPress runs our sanitize
 *   callback on every update, and kept out of the REST API.
 * - keyd_stub_status:   what keyd last said about the key, plus the key id and
 *   hint of a successful validation, so webhook events can be matched.
 * - keyd_stub_seen_webhooks: recent webhook-id values, to drop duplicates.
 * - keyd_stub_event_sequences: per key, the sequence of the last event about
 *   it that was applied, to ignore older events that arrive late.
 * - keyd_stub_receipt_keys: keyd's published receipt keys (a JWKS), to check
 *   the stored receipt while keyd cannot be reached.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

const KEYD_STUB_OPTION_SETTINGS = 'keyd_stub_settings';
const KEYD_STUB_OPTION_STATUS   = 'keyd_stub_status';
const KEYD_STUB_OPTION_SEEN     = 'keyd_stub_seen_webhooks';
const KEYD_STUB_OPTION_SEQUENCE = 'keyd_stub_event_sequences';
const KEYD_STUB_OPTION_RECEIPT_KEYS = 'keyd_stub_receipt_keys';

/**
 * Where keyd answers when neither the settings nor KEYD_URL say otherwise.
 * A real plugin puts its service's URL here.
 */
const KEYD_STUB_DEFAULT_URL = 'http://127.0.0.1:8080';

/** A key is exactly 20 letters and digits (API.md). */
const KEYD_STUB_KEY_PATTERN = '/^[A-Za-z0-9]{20}$/';

/**
 * Registers the settings option with its sanitize callback.
 */
function keyd_stub_register_settings() {
	register_setting(
		'keyd_stub',
		KEYD_STUB_OPTION_SETTINGS,
		array(
			'type'              => 'object',
			'sanitize_callback' => 'keyd_stub_sanitize_settings',
			// The key and the webhook secret are credentials: never expose
			// them through /wp-json/wp/v2/settings.
			'show_in_rest'      => false,
			'default'           => keyd_stub_default_settings(),
		)
	);
}
add_action( 'admin_init', 'keyd_stub_register_settings' );
add_action( 'rest_api_init', 'keyd_stub_register_settings' );

/**
 * The settings as they are when nothing was saved yet.
 *
 * @return array
 */
function keyd_stub_default_settings() {
	return array(
		'url'            => '',
		'api_key'        => '',
		'webhook_secret' => '',
	);
}

/**
 * Sanitize callback of the settings option.
 *
 * WordPress calls it on every update_option(), including ours, so it must
 * accept an already clean array and give it back unchanged. A value that does
 * not have the right shape keeps the previously stored one: a half-pasted key
 * must never replace a working key.
 *
 * @param mixed $input The value about to be stored.
 * @return array The value to store.
 */
function keyd_stub_sanitize_settings( $input ) {
	$old = keyd_stub_get_settings();
	if ( ! is_array( $input ) ) {
		return $old;
	}
	$clean = $old;

	if ( isset( $input['url'] ) ) {
		$url = keyd_stub_clean_url( $input['url'] );
		if ( null !== $url ) {
			$clean['url'] = $url;
		}
	}

	if ( isset( $input['api_key'] ) ) {
		$key = trim( (string) $input['api_key'] );
		if ( '' === $key || preg_match( KEYD_STUB_KEY_PATTERN, $key ) ) {
			$clean['api_key'] = $key;
		}
	}

	if ( isset( $input['webhook_secret'] ) ) {
		$secret = trim( (string) $input['webhook_secret'] );
		if ( '' === $secret || keyd_stub_is_webhook_secret( $secret ) ) {
			$clean['webhook_secret'] = $secret;
		}
	}

	return $clean;
}

/**
 * Cleans a keyd URL typed by the site owner.
 *
 * Not wp_http_validate_url(): it refuses loopback and private addresses, and a
 * keyd on the same machine or the same network is a normal set-up. Only an
 * administrator can set this URL.
 *
 * @param mixed $url The typed URL.
 * @return string|null The URL without a trailing slash, '' for none, or null
 *                     when it is not a full http:// or https:// address.
 */
function keyd_stub_clean_url( $url ) {
	$url = untrailingslashit( trim( (string) $url ) );
	if ( '' === $url ) {
		return '';
	}
	$parts = wp_parse_url( $url );
	if ( ! is_array( $parts ) || empty( $parts['host'] ) || ! in_array( strtolower( isset( $parts['scheme'] ) ? $parts['scheme'] : '' ), array( 'http', 'https' ), true ) ) {
		return null;
	}
	$clean = esc_url_raw( $url, array( 'http', 'https' ) );
	return '' === $clean ? null : $clean;
}

/**
 * Whether a string looks like a webhook secret as keyd shows it: "whsec_"
 * followed by base64. (The verifier also takes a bare base64 secret, but a
 * pasted value without the prefix is more likely something else.)
 *
 * @param string $secret The pasted secret.
 * @return bool
 */
function keyd_stub_is_webhook_secret( $secret ) {
	return 0 === strpos( $secret, 'whsec_' ) && null !== keyd_stub_webhook_secret_key( $secret );
}

/**
 * The stored settings, always with every field present.
 *
 * @return array
 */
function keyd_stub_get_settings() {
	$stored = get_option( KEYD_STUB_OPTION_SETTINGS, array() );
	if ( ! is_array( $stored ) ) {
		$stored = array();
	}
	return array_merge( keyd_stub_default_settings(), array_intersect_key( $stored, keyd_stub_default_settings() ) );
}

/**
 * The keyd base URL without a trailing slash: KEYD_URL, else the setting, else
 * the default.
 *
 * @return string
 */
function keyd_stub_get_url() {
	if ( defined( 'KEYD_URL' ) && '' !== (string) KEYD_URL ) {
		return untrailingslashit( (string) KEYD_URL );
	}
	$settings = keyd_stub_get_settings();
	return '' !== $settings['url'] ? $settings['url'] : KEYD_STUB_DEFAULT_URL;
}

/**
 * The API key in use: KEYD_API_KEY, else the stored one ('' when none).
 *
 * @return string
 */
function keyd_stub_get_api_key() {
	if ( keyd_stub_key_from_constant() ) {
		return trim( (string) KEYD_API_KEY );
	}
	$settings = keyd_stub_get_settings();
	return $settings['api_key'];
}

/**
 * Whether wp-config.php defines the key (the field is then hidden).
 *
 * @return bool
 */
function keyd_stub_key_from_constant() {
	return defined( 'KEYD_API_KEY' ) && '' !== (string) KEYD_API_KEY;
}

/**
 * The webhook secret in use: KEYD_WEBHOOK_SECRET, else the stored one.
 *
 * @return string
 */
function keyd_stub_get_webhook_secret() {
	if ( keyd_stub_secret_from_constant() ) {
		return trim( (string) KEYD_WEBHOOK_SECRET );
	}
	$settings = keyd_stub_get_settings();
	return $settings['webhook_secret'];
}

/**
 * Whether wp-config.php defines the webhook secret.
 *
 * @return bool
 */
function keyd_stub_secret_from_constant() {
	return defined( 'KEYD_WEBHOOK_SECRET' ) && '' !== (string) KEYD_WEBHOOK_SECRET;
}

/**
 * A short fingerprint of a key, so the stored status can tell which key it is
 * about (the key in wp-config.php may change behind our back).
 *
 * @param string $key The API key.
 * @return string
 */
function keyd_stub_key_fingerprint( $key ) {
	return '' === $key ? '' : substr( hash( 'sha256', $key ), 0, 16 );
}

/**
 * What we know about the key in use.
 *
 * Fields: state ('valid', 'invalid' or 'unknown'), code, message, key_id, hint,
 * type, name, expires_at, plan, credits, checked_at, fingerprint, and, once a
 * webhook event concerned the key, event (type, message, level, at). A valid
 * key also has receipt (keyd's signed receipt, '' without one) and rotation
 * (replaced_at, grace_ends_at when keyd said the key was replaced by a reset,
 * otherwise null); offline_since is when keyd was last found unreachable
 * since it last answered (0: it answered).
 *
 * @return array
 */
function keyd_stub_get_status() {
	$defaults = array(
		'state'         => 'unknown',
		'code'          => '',
		'message'       => '',
		'key_id'        => '',
		'hint'          => '',
		'type'          => '',
		'name'          => '',
		'expires_at'    => '',
		'plan'          => '',
		'credits'       => null,
		// For a key that counts its sites: array( 'used' => n, 'limit' => m ).
		'sites'         => null,
		// For a key with its own spend limit: keyd's spend_limit object.
		'spend_limit'   => null,
		'checked_at'    => 0,
		'fingerprint'   => '',
		'event'         => null,
		'receipt'       => '',
		'rotation'      => null,
		'offline_since' => 0,
	);
	$status   = get_option( KEYD_STUB_OPTION_STATUS, array() );
	if ( ! is_array( $status ) ) {
		$status = array();
	}
	$status = array_merge( $defaults, $status );

	// A status recorded for another key says nothing about this one.
	$key = keyd_stub_get_api_key();
	if ( '' === $key || keyd_stub_key_fingerprint( $key ) !== $status['fingerprint'] ) {
		$status = $defaults;
	}
	return $status;
}

/**
 * Stores what we know about the key in use.
 *
 * @param array $status See keyd_stub_get_status().
 */
function keyd_stub_set_status( array $status ) {
	$status['fingerprint'] = keyd_stub_key_fingerprint( keyd_stub_get_api_key() );
	update_option( KEYD_STUB_OPTION_STATUS, $status, false );
}

/**
 * Whether the key in use was valid at the last check and no event has said
 * otherwise since. Plugin code calls this before using the service.
 *
 * While keyd cannot be reached, a key that keyd gave a signed receipt for
 * stays valid until the receipt's valid-until, and no longer; a receipt that
 * does not verify (altered, signed by another key, for another site) counts
 * as none at all.
 *
 * @param int|null $now Unix time to judge at (default: now).
 * @return bool
 */
function keyd_stub_is_key_valid( $now = null ) {
	$status = keyd_stub_get_status();
	if ( 'valid' !== $status['state'] ) {
		return false;
	}
	if ( empty( $status['offline_since'] ) || '' === $status['receipt'] ) {
		return true;
	}
	return KEYD_STUB_RECEIPT_VALID === keyd_stub_check_receipt( $status, $now )['result'];
}
