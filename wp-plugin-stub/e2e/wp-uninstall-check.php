<?php
/**
 * Deletes the plugin the way the Plugins screen does (uninstall.php) and
 * checks that nothing it stored is left in the database.
 *
 * Usage: php wp-uninstall-check.php HOST:PORT
 */

if ( PHP_SAPI !== 'cli' || $argc !== 2 ) {
	fwrite( STDERR, "usage: php wp-uninstall-check.php HOST:PORT\n" );
	exit( 2 );
}
$_SERVER['HTTP_HOST']   = $argv[1];
$_SERVER['SERVER_NAME'] = preg_replace( '/:.*/', '', $argv[1] );
$_SERVER['REQUEST_URI'] = '/';

require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

/**
 * The options rows whose name mentions the plugin.
 *
 * @return string[]
 */
function keyd_e2e_plugin_options() {
	global $wpdb;
	return $wpdb->get_col( $wpdb->prepare( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE %s", '%' . $wpdb->esc_like( 'keyd_stub' ) . '%' ) );
}

// A pending "outcome of the last save" must go too, and the key's status
// (absent when the run had no keyd to judge a key).
set_transient( 'keyd_stub_flash_1', array( 'pending' ), 60 );
add_option( 'keyd_stub_status', array( 'state' => 'unknown' ), '', 'no' );

$before = keyd_e2e_plugin_options();
echo 'before: ' . implode( ', ', $before ) . "\n";
foreach ( array( 'keyd_stub_settings', 'keyd_stub_status', 'keyd_stub_seen_webhooks', '_transient_keyd_stub_flash_1' ) as $expected ) {
	if ( ! in_array( $expected, $before, true ) ) {
		fwrite( STDERR, "expected option $expected before uninstalling\n" );
		exit( 1 );
	}
}

deactivate_plugins( 'keyd-stub/keyd-stub.php', true );
uninstall_plugin( 'keyd-stub/keyd-stub.php' );
wp_cache_flush();

$after = keyd_e2e_plugin_options();
if ( $after ) {
	fwrite( STDERR, 'left after uninstall: ' . implode( ', ', $after ) . "\n" );
	exit( 1 );
}
echo "after: nothing left\n";
