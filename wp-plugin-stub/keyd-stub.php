<?php
/**
 * Plugin Name:       keyd API key (reference stub)
 * Description:       Validates the site's API key with keyd ("Save settings & validate") and listens to keyd's webhooks so the site learns at once when its key is reset or an alias changes.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      7.4
 * Author:            keyd
 * License:           GPL-2.0-or-later
 * Text Domain:       keyd-stub
 *
 * Copy this directory into your own plugin and rename the "keyd_stub" /
 * "keyd-stub" prefix; see README.md.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/** Sent to keyd as plugin_version. */
const KEYD_STUB_VERSION = '0.1.0';

/** Sent to keyd as plugin; also the text domain and the REST namespace. */
const KEYD_STUB_SLUG = 'keyd-stub';

/** This file, for plugin_basename(). */
const KEYD_STUB_FILE = __FILE__;

require_once __DIR__ . '/includes/signature.php';
require_once __DIR__ . '/includes/receipt.php';
require_once __DIR__ . '/includes/settings.php';
require_once __DIR__ . '/includes/validate.php';
require_once __DIR__ . '/includes/webhook.php';

if ( is_admin() ) {
	require_once __DIR__ . '/includes/admin.php';
}

/**
 * Loads translations from the plugin's languages/ folder, if any.
 */
function keyd_stub_load_textdomain() {
	load_plugin_textdomain( 'keyd-stub', false, dirname( plugin_basename( __FILE__ ) ) . '/languages' );
}
add_action( 'init', 'keyd_stub_load_textdomain' );
