<?php
/**
 * The ShortPixel-style key check against a real keyd, inside the real
 * WordPress: sends exactly the requests the ShortPixel Image Optimizer's
 * "Save settings & validate" sends (POST, then the GET fallback) to its API
 * host, which the must-use plugin compat/spio-to-keyd.php hands to keyd, and
 * reads the answers the way that plugin does.
 *
 * Usage: KEYD_URL=... KEYD_ADMIN_TOKEN=... SPIO_SITE_PASS=... php spio-check.php HOST:PORT
 * Prints one line per check; exits 1 on the first that fails.
 */

if ( PHP_SAPI !== 'cli' || $argc !== 2 ) {
	fwrite( STDERR, "usage: php spio-check.php HOST:PORT\n" );
	exit( 2 );
}
$keyd_url   = getenv( 'KEYD_URL' );
$admin      = getenv( 'KEYD_ADMIN_TOKEN' );
$site_pass  = getenv( 'SPIO_SITE_PASS' );
$_SERVER['HTTP_HOST']   = $argv[1];
$_SERVER['SERVER_NAME'] = preg_replace( '/:.*/', '', $argv[1] );
$_SERVER['REQUEST_URI'] = '/';
define( 'KEYD_SPIO_URL', $keyd_url );

require '/usr/share/wordpress/wp-load.php';
require __DIR__ . '/spio-client.php';

function fail( $what ) {
	fwrite( STDERR, "FAIL: $what\n" );
	exit( 1 );
}

function pass( $what ) {
	echo "ok: $what\n";
}

/** Calls keyd's own API and returns the decoded answer. */
function keyd_call( $method, $path, $auth, $body = null ) {
	$args = array(
		'method'  => $method,
		'timeout' => 15,
		'headers' => array(
			'Authorization' => 'Bearer ' . $auth,
			'Content-Type'  => 'application/json',
		),
	);
	if ( null !== $body ) {
		$args['body'] = wp_json_encode( $body );
	}
	$res = wp_remote_request( KEYD_SPIO_URL . $path, $args );
	if ( is_wp_error( $res ) ) {
		fail( "$method $path: " . $res->get_error_message() );
	}
	return json_decode( wp_remote_retrieve_body( $res ), true );
}

// An account with 750 credits and a deactivated alias, made through keyd's API.
$created = keyd_call( 'POST', '/admin/v1/accounts', $admin, array( 'name' => 'SPIO Agency', 'email' => 'spio@example.com', 'plan' => 'pro', 'credits' => 750 ) );
$primary = $created['key'] ?? fail( 'no account: ' . wp_json_encode( $created ) );
$alias   = keyd_call( 'POST', '/v1/aliases', $primary, array( 'name' => 'Paused client' ) );
keyd_call( 'POST', '/v1/aliases/' . $alias['alias']['id'] . '/deactivate', $primary );

foreach ( array( 'POST' => false, 'GET fallback' => true ) as $how => $get ) {
	$quota = spio_read( spio_request( $primary, $site_pass, $get ) );
	if ( null === $quota || true !== $quota['APIKeyValid'] ) {
		fail( "$how: the primary key is not valid: " . wp_json_encode( $quota ) );
	}
	if ( 750 !== $quota['APICallsRemaining'] || $quota['Unlimited'] ) {
		fail( "$how: remaining credits " . wp_json_encode( $quota ) . ', want 750' );
	}
	pass( "$how: primary key valid with 750 credits" );

	$quota = spio_read( spio_request( $alias['key'], $site_pass, $get ) );
	if ( null === $quota || false !== $quota['APIKeyValid'] ) {
		fail( "$how: the deactivated alias is not refused: " . wp_json_encode( $quota ) );
	}
	if ( 'this key was deactivated by the account owner' !== $quota['Message'] ) {
		fail( "$how: message for the deactivated alias: " . $quota['Message'] );
	}
	pass( "$how: deactivated alias refused: " . $quota['Message'] );
}

// keyd recorded the check like a validation.
$keys = keyd_call( 'GET', '/v1/keys', $primary );
if ( null === $keys['keys'][0]['last_used_at'] ) {
	fail( 'the primary key shows no last use' );
}
pass( 'the check counts as a use of the key' );

// Only the key check goes to keyd: the plugin's other calls to its API host
// go where they went (here: nowhere, WP_HTTP_BLOCK_EXTERNAL is on).
if ( ! is_wp_error( wp_remote_post( 'https://api.shortpixel.com/v2/reducer.php', array( 'timeout' => 5 ) ) ) ) {
	fail( 'a request other than the key check was answered' );
}
pass( 'other requests to the API host are not sent to keyd' );
