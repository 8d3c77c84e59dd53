<?php
/**
 * PHPUnit bootstrap: loads the plugin's pure-PHP parts with the handful of
 * WordPress functions they call replaced by small in-memory versions, so the
 * tests run without a WordPress install or a database.
 *
 * @package KeydStub
 */

define( 'ABSPATH', __DIR__ . '/' );
define( 'MINUTE_IN_SECONDS', 60 );
define( 'HOUR_IN_SECONDS', 3600 );
define( 'DAY_IN_SECONDS', 86400 );

/** Options "table" of those versions; tests reset it in setUp(). */
$GLOBALS['keyd_stub_test_options'] = array();
/** Actions fired through do_action(), newest last. */
$GLOBALS['keyd_stub_test_actions'] = array();

function add_action( ...$args ) {}
function add_filter( ...$args ) {}
function do_action( $hook, ...$args ) {
	$GLOBALS['keyd_stub_test_actions'][] = array( $hook, $args );
}
function __( $text, $domain = 'default' ) {
	return $text;
}
function _n( $single, $plural, $number, $domain = 'default' ) {
	return 1 === (int) $number ? $single : $plural;
}
function get_option( $name, $default = false ) {
	if ( array_key_exists( $name, $GLOBALS['keyd_stub_test_options'] ) ) {
		return $GLOBALS['keyd_stub_test_options'][ $name ];
	}
	return 'date_format' === $name ? 'Y-m-d' : ( 'time_format' === $name ? 'H:i' : $default );
}
function update_option( $name, $value, $autoload = null ) {
	$GLOBALS['keyd_stub_test_options'][ $name ] = $value;
	return true;
}
function delete_option( $name ) {
	unset( $GLOBALS['keyd_stub_test_options'][ $name ] );
	return true;
}
/** The site's timezone, as WordPress's wp_date() uses it; tests may set it. */
$GLOBALS['keyd_stub_test_timezone'] = 'UTC';
function wp_date( $format, $timestamp = null ) {
	$date = new DateTime( '@' . ( null === $timestamp ? time() : $timestamp ) );
	$date->setTimezone( new DateTimeZone( $GLOBALS['keyd_stub_test_timezone'] ) );
	return $date->format( $format );
}
function untrailingslashit( $value ) {
	return rtrim( $value, '/\\' );
}
/** The site's home URL; tests may set it. */
$GLOBALS['keyd_stub_test_home'] = 'http://127.0.0.1';
function home_url( $path = '' ) {
	return $GLOBALS['keyd_stub_test_home'] . $path;
}
function wp_parse_url( $url, $component = -1 ) {
	return parse_url( $url, $component );
}
function number_format_i18n( $number, $decimals = 0 ) {
	return number_format( $number, $decimals );
}

/** The parts of WordPress's REST classes the webhook handler uses. */
class WP_REST_Request {
	private $headers;
	private $body;
	public function __construct( array $headers, $body ) {
		$this->headers = array_change_key_case( $headers );
		$this->body    = $body;
	}
	public function get_header( $name ) {
		$name = strtolower( $name );
		return isset( $this->headers[ $name ] ) ? $this->headers[ $name ] : null;
	}
	public function get_body() {
		return $this->body;
	}
}
class WP_REST_Response {
	public $data;
	public $status;
	public function __construct( $data = null, $status = 200 ) {
		$this->data   = $data;
		$this->status = $status;
	}
	public function get_status() {
		return $this->status;
	}
}
class WP_Error {
	public $code;
	public $data;
	public function __construct( $code = '', $message = '', $data = '' ) {
		$this->code = $code;
		$this->data = $data;
	}
}
function is_wp_error( $thing ) {
	return $thing instanceof WP_Error;
}

require_once dirname( __DIR__ ) . '/includes/signature.php';
require_once dirname( __DIR__ ) . '/includes/receipt.php';
require_once dirname( __DIR__ ) . '/includes/settings.php';
require_once dirname( __DIR__ ) . '/includes/validate.php';
require_once dirname( __DIR__ ) . '/includes/webhook.php';

// The ShortPixel-style compatibility pieces: the must-use plugin and the
// client the end-to-end test speaks as.
define( 'KEYD_SPIO_URL', 'http://127.0.0.1:8080/' );
require_once dirname( __DIR__ ) . '/compat/spio-to-keyd.php';
require_once dirname( __DIR__ ) . '/e2e/spio-client.php';
