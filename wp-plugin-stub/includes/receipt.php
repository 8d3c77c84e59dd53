<?php
/**
 * Verifying keyd's signed receipts, in plain PHP (no WordPress): copy it
 * anywhere.
 *
 * A receipt is a compact JWS (header.payload.signature, base64url) signed
 * with Ed25519 (alg EdDSA). keyd publishes the public keys as a JWKS at
 * /.well-known/keyd-receipt-keys.json; the header's kid says which one
 * signed. PHP's sodium extension (bundled since PHP 7.2) checks the
 * signature; nothing else is needed.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/** Results of keyd_stub_receipt_verify(). */
const KEYD_STUB_RECEIPT_VALID         = 'valid';
const KEYD_STUB_RECEIPT_MALFORMED     = 'malformed';
const KEYD_STUB_RECEIPT_UNKNOWN_KEY   = 'unknown_key';
const KEYD_STUB_RECEIPT_BAD_SIGNATURE = 'bad_signature';
const KEYD_STUB_RECEIPT_EXPIRED       = 'expired';
const KEYD_STUB_RECEIPT_OTHER_SITE    = 'other_site';

/**
 * Decodes base64url without padding, strictly.
 *
 * @param string $s The encoded text.
 * @return string|false The bytes, or false when $s is not base64url.
 */
function keyd_stub_base64url_decode( $s ) {
	if ( ! is_string( $s ) || ! preg_match( '/^[A-Za-z0-9_-]*$/', $s ) ) {
		return false;
	}
	return base64_decode( strtr( $s, '-_', '+/' ), true );
}

/**
 * The Ed25519 public key with this kid in a JWKS, or null.
 *
 * @param array  $jwks The decoded key set: array( 'keys' => array( ... ) ).
 * @param string $kid  The key id from the receipt's header.
 * @return string|null 32 bytes.
 */
function keyd_stub_receipt_public_key( array $jwks, $kid ) {
	$keys = isset( $jwks['keys'] ) && is_array( $jwks['keys'] ) ? $jwks['keys'] : array();
	foreach ( $keys as $jwk ) {
		if ( ! is_array( $jwk ) || ! isset( $jwk['kid'], $jwk['kty'], $jwk['crv'], $jwk['x'] ) || $jwk['kid'] !== $kid ) {
			continue;
		}
		if ( 'OKP' !== $jwk['kty'] || 'Ed25519' !== $jwk['crv'] || ( isset( $jwk['alg'] ) && 'EdDSA' !== $jwk['alg'] ) ) {
			continue;
		}
		$x = keyd_stub_base64url_decode( $jwk['x'] );
		if ( false !== $x && SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES === strlen( $x ) ) {
			return $x;
		}
	}
	return null;
}

/**
 * Checks a receipt: its form, its signature by a key of the set, that it
 * has not expired and, when $site is given, that it is for this site.
 *
 * @param string   $token The receipt as keyd sent it.
 * @param array    $jwks  keyd's published key set, decoded.
 * @param int|null $now   Unix time to judge the expiry at (default: now).
 * @param string   $site  The site the receipt must be for; '' for any.
 * @return array {
 *     @type string $result One of the KEYD_STUB_RECEIPT_* constants.
 *     @type array  $claims The payload (key_id, account_id, site, scopes,
 *                          plan, iat, exp) once the signature was checked,
 *                          otherwise empty.
 * }
 */
function keyd_stub_receipt_verify( $token, array $jwks, $now = null, $site = '' ) {
	$fail = function ( $result, array $claims = array() ) {
		return array(
			'result' => $result,
			'claims' => $claims,
		);
	};
	$parts = is_string( $token ) ? explode( '.', $token ) : array();
	if ( 3 !== count( $parts ) ) {
		return $fail( KEYD_STUB_RECEIPT_MALFORMED );
	}
	$header    = json_decode( (string) keyd_stub_base64url_decode( $parts[0] ), true );
	$signature = keyd_stub_base64url_decode( $parts[2] );
	if ( ! is_array( $header ) || ! isset( $header['alg'], $header['kid'] ) || 'EdDSA' !== $header['alg'] || ! is_string( $header['kid'] )
		|| false === $signature || SODIUM_CRYPTO_SIGN_BYTES !== strlen( $signature ) ) {
		return $fail( KEYD_STUB_RECEIPT_MALFORMED );
	}
	$public = keyd_stub_receipt_public_key( $jwks, $header['kid'] );
	if ( null === $public ) {
		return $fail( KEYD_STUB_RECEIPT_UNKNOWN_KEY );
	}
	if ( ! sodium_crypto_sign_verify_detached( $signature, $parts[0] . '.' . $parts[1], $public ) ) {
		return $fail( KEYD_STUB_RECEIPT_BAD_SIGNATURE );
	}
	$claims = json_decode( (string) keyd_stub_base64url_decode( $parts[1] ), true );
	if ( ! is_array( $claims ) || ! isset( $claims['iss'], $claims['key_id'], $claims['iat'], $claims['exp'] )
		|| 'keyd' !== $claims['iss'] || ! is_int( $claims['iat'] ) || ! is_int( $claims['exp'] ) ) {
		return $fail( KEYD_STUB_RECEIPT_MALFORMED );
	}
	if ( ( null === $now ? time() : (int) $now ) >= $claims['exp'] ) {
		return $fail( KEYD_STUB_RECEIPT_EXPIRED, $claims );
	}
	if ( '' !== $site && ( ! isset( $claims['site'] ) || $claims['site'] !== $site ) ) {
		return $fail( KEYD_STUB_RECEIPT_OTHER_SITE, $claims );
	}
	return $fail( KEYD_STUB_RECEIPT_VALID, $claims );
}
