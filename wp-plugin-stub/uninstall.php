<?php
/**
 * Runs when the plugin is deleted from the Plugins screen: removes everything
 * it stored. The constants in wp-config.php are the site owner's to remove.
 *
 * @package KeydStub
 */

if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
	exit;
}

/**
 * Deletes the plugin's options and transients on the current site.
 */
function keyd_stub_uninstall_site() {
	global $wpdb;

	delete_option( 'keyd_stub_settings' );
	delete_option( 'keyd_stub_status' );
	delete_option( 'keyd_stub_seen_webhooks' );
	delete_option( 'keyd_stub_event_sequences' );
	delete_option( 'keyd_stub_receipt_keys' );

	// The per-user "outcome of the last save" transients (keyd_stub_flash_<user id>).
	$like = $wpdb->esc_like( '_transient_keyd_stub_' ) . '%';
	$names = $wpdb->get_col( $wpdb->prepare( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE %s", $like ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
	foreach ( $names as $name ) {
		delete_transient( substr( $name, strlen( '_transient_' ) ) );
	}
}

if ( is_multisite() ) {
	foreach ( get_sites( array( 'fields' => 'ids', 'number' => 0 ) ) as $keyd_stub_site_id ) {
		switch_to_blog( $keyd_stub_site_id );
		keyd_stub_uninstall_site();
		restore_current_blog();
	}
} else {
	keyd_stub_uninstall_site();
}
