<?php
/**
 * Installs WordPress into the (fresh) database and activates the plugin.
 * Debian ships no WP-CLI, so this is done from PHP.
 *
 * Usage: php wp-setup.php HOST:PORT ADMIN_USER ADMIN_PASSWORD
 */

if ( PHP_SAPI !== 'cli' || $argc !== 4 ) {
	fwrite( STDERR, "usage: php wp-setup.php HOST:PORT USER PASSWORD\n" );
	exit( 2 );
}
list( , $host, $user, $password ) = $argv;

// Debian's wp-config.php picks /etc/wordpress/config-<host>.php from the Host.
$_SERVER['HTTP_HOST']   = $host;
$_SERVER['SERVER_NAME'] = preg_replace( '/:.*/', '', $host );
$_SERVER['REQUEST_URI'] = '/';
define( 'WP_INSTALLING', true );

require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

if ( ! is_blog_installed() ) {
	$result = wp_install( 'keyd e2e', $user, $user . '@example.com', false, '', wp_slash( $password ) );
	if ( is_wp_error( $result ) ) {
		fwrite( STDERR, 'wp_install: ' . $result->get_error_message() . "\n" );
		exit( 1 );
	}
}

// Pretty permalinks, so /wp-json/ works as on most real sites.
update_option( 'permalink_structure', '/%postname%/' );
flush_rewrite_rules( false );

$activated = activate_plugin( 'keyd-stub/keyd-stub.php' );
if ( is_wp_error( $activated ) ) {
	fwrite( STDERR, 'activate_plugin: ' . $activated->get_error_message() . "\n" );
	exit( 1 );
}
if ( ! is_plugin_active( 'keyd-stub/keyd-stub.php' ) ) {
	fwrite( STDERR, "the plugin did not activate\n" );
	exit( 1 );
}
echo "WordPress installed at http://$host/, plugin active\n";
