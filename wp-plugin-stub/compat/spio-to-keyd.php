<?php
/**
 * Plugin Name: keyd for ShortPixel-style key checks
 * Description: Sends the key check of plugins written the ShortPixel way (POST or GET /v2/api-status.php on their API host) to keyd instead, unchanged. A must-use plugin: copy it into wp-content/mu-plugins/.
 * Version: 1.0.0
 * License: GPL-2.0-or-later
 *
 * Configuration, in wp-config.php:
 *
 *     define( 'KEYD_SPIO_URL', 'https://keys.example.com' ); // where keyd answers
 *     define( 'KEYD_SPIO_HOST', 'api.shortpixel.com' );      // the plugin's API host (this is the default)
 *
 * Only the key check is sent to keyd: every other request to that host goes
 * where the plugin sent it.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The keyd URL a request for the plugin's key check goes to instead, or
 * null when the request is not one.
 *
 * @param string $url The URL the plugin asked for.
 * @return string|null
 */
function keyd_spio_target( $url ) {
	if ( ! defined( 'KEYD_SPIO_URL' ) || '' === KEYD_SPIO_URL ) {
		return null;
	}
	$api_host = defined( 'KEYD_SPIO_HOST' ) ? KEYD_SPIO_HOST : 'api.shortpixel.com';
	$parts    = wp_parse_url( $url );
	if ( ! is_array( $parts ) || ! isset( $parts['host'], $parts['path'] ) || strtolower( $parts['host'] ) !== strtolower( $api_host ) ) {
		return null;
	}
	if ( '/v2/api-status.php' !== $parts['path'] ) {
		return null;
	}
	$target = rtrim( KEYD_SPIO_URL, '/' ) . $parts['path'];
	if ( isset( $parts['query'] ) ) {
		$target .= '?' . $parts['query']; // the plugin's GET fallback
	}
	return $target;
}

/**
 * Answers the plugin's key check with keyd's answer: the same method, body
 * and options, sent to keyd. The plugin sees keyd's answer as its API's.
 *
 * @param false|array|WP_Error $pre  A preempted answer, or false.
 * @param array                $args The request's arguments.
 * @param string               $url  The URL the plugin asked for.
 * @return false|array|WP_Error
 */
function keyd_spio_preempt( $pre, $args, $url ) {
	if ( false !== $pre ) {
		return $pre;
	}
	$target = keyd_spio_target( $url );
	if ( null === $target ) {
		return $pre;
	}
	return wp_remote_request( $target, $args );
}
add_filter( 'pre_http_request', 'keyd_spio_preempt', 10, 3 );
