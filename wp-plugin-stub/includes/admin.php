<?php
/**
 * The Settings > keyd page, its "Save settings & validate" handler, and the
 * admin notices.
 *
 * The form posts to admin-post.php rather than options.php so that saving and
 * validating happen in one request whose outcome we fully control: a
 * malformed key is refused before any network call, and an unreachable keyd
 * leaves the previous key and its state alone.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/** Page slug: wp-admin/options-general.php?page=keyd-stub */
const KEYD_STUB_PAGE = 'keyd-stub';

/** admin-post.php action and nonce action of the form. */
const KEYD_STUB_SAVE_ACTION = 'keyd_stub_save';

/** admin-post.php action and nonce action of "Deactivate this site". */
const KEYD_STUB_DEACTIVATE_ACTION = 'keyd_stub_deactivate';

/**
 * Adds the page under Settings.
 */
function keyd_stub_add_settings_page() {
	add_options_page(
		__( 'keyd API key', 'keyd-stub' ),
		__( 'keyd', 'keyd-stub' ),
		'manage_options',
		KEYD_STUB_PAGE,
		'keyd_stub_render_settings_page'
	);
}
add_action( 'admin_menu', 'keyd_stub_add_settings_page' );

/**
 * Adds a "Settings" link to the plugin's row on the Plugins screen.
 *
 * @param string[] $links Existing links.
 * @return string[]
 */
function keyd_stub_action_links( $links ) {
	$url = admin_url( 'options-general.php?page=' . KEYD_STUB_PAGE );
	array_unshift( $links, '<a href="' . esc_url( $url ) . '">' . esc_html__( 'Settings', 'keyd-stub' ) . '</a>' );
	return $links;
}
add_filter( 'plugin_action_links_' . plugin_basename( KEYD_STUB_FILE ), 'keyd_stub_action_links' );

/**
 * Name of the per-user transient that carries the outcome of a save across
 * the redirect back to the page.
 *
 * @return string
 */
function keyd_stub_flash_name() {
	return 'keyd_stub_flash_' . get_current_user_id();
}

/**
 * A string field of the posted form ('' when absent or not a string).
 *
 * @param array  $input The posted keyd_stub[] fields, unslashed.
 * @param string $name  The field name.
 * @return string
 */
function keyd_stub_input_string( array $input, $name ) {
	return isset( $input[ $name ] ) && is_string( $input[ $name ] ) ? $input[ $name ] : '';
}

/**
 * Handles "Save settings & validate".
 */
function keyd_stub_handle_save() {
	if ( ! current_user_can( 'manage_options' ) ) {
		wp_die( esc_html__( 'You are not allowed to change these settings.', 'keyd-stub' ), '', array( 'response' => 403 ) );
	}
	check_admin_referer( KEYD_STUB_SAVE_ACTION );

	// wp_unslash(): WordPress adds slashes to all request data.
	$input    = isset( $_POST['keyd_stub'] ) && is_array( $_POST['keyd_stub'] ) ? wp_unslash( $_POST['keyd_stub'] ) : array(); // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- sanitized field by field below and by keyd_stub_sanitize_settings().
	$messages = array();

	// 1. The URL and the webhook secret are plain configuration: save them. A
	// value that does not pass keeps the stored one and is reported.
	$update = keyd_stub_get_settings();
	if ( ! defined( 'KEYD_URL' ) && isset( $input['url'] ) ) {
		$url = keyd_stub_clean_url( sanitize_text_field( keyd_stub_input_string( $input, 'url' ) ) );
		if ( null === $url ) {
			$messages[] = array(
				'level'   => 'error',
				'message' => __( 'The keyd URL was not saved: it must be a full http:// or https:// address.', 'keyd-stub' ),
			);
		} else {
			$update['url'] = $url;
		}
	}
	if ( ! keyd_stub_secret_from_constant() && isset( $input['webhook_secret'] ) ) {
		$secret = sanitize_text_field( keyd_stub_input_string( $input, 'webhook_secret' ) );
		if ( '' !== $secret && ! keyd_stub_is_webhook_secret( $secret ) ) {
			$messages[] = array(
				'level'   => 'error',
				'message' => __( 'The webhook secret was not saved: it must look like whsec_ followed by base64 text, exactly as keyd showed it.', 'keyd-stub' ),
			);
		} else {
			$update['webhook_secret'] = $secret;
		}
	}
	update_option( KEYD_STUB_OPTION_SETTINGS, $update );
	$saved = keyd_stub_get_settings();

	// 2. The key: from wp-config.php, or the pasted one.
	if ( keyd_stub_key_from_constant() ) {
		$key       = keyd_stub_get_api_key();
		$store_key = false;
	} else {
		// No sanitize_text_field() here: it could turn a malformed paste into
		// something that looks like a key. The strict format check in
		// keyd_stub_validate_key() is the sanitizing step.
		$key       = trim( keyd_stub_input_string( $input, 'api_key' ) );
		$store_key = true;
	}

	if ( '' === $key ) {
		if ( $store_key && '' !== $saved['api_key'] ) {
			$saved['api_key'] = '';
			update_option( KEYD_STUB_OPTION_SETTINGS, $saved );
			delete_option( KEYD_STUB_OPTION_STATUS );
			$messages[] = array(
				'level'   => 'warning',
				'message' => __( 'The API key was removed.', 'keyd-stub' ),
			);
		} else {
			$messages[] = array(
				'level'   => 'warning',
				'message' => __( 'Settings saved. Paste your API key to validate it.', 'keyd-stub' ),
			);
		}
	} else {
		$messages[] = keyd_stub_validate_key( $key, $store_key );
	}

	set_transient( keyd_stub_flash_name(), $messages, MINUTE_IN_SECONDS );
	wp_safe_redirect( admin_url( 'options-general.php?page=' . KEYD_STUB_PAGE ) );
	exit;
}
add_action( 'admin_post_' . KEYD_STUB_SAVE_ACTION, 'keyd_stub_handle_save' );

/**
 * Handles "Deactivate this site": frees this site's activation of the key,
 * for a site that moves to a new address or stops using the key.
 */
function keyd_stub_handle_deactivate() {
	if ( ! current_user_can( 'manage_options' ) ) {
		wp_die( esc_html__( 'You are not allowed to change these settings.', 'keyd-stub' ), '', array( 'response' => 403 ) );
	}
	check_admin_referer( KEYD_STUB_DEACTIVATE_ACTION );
	$key = keyd_stub_get_api_key();
	if ( '' === $key ) {
		$result = array(
			'level'   => 'warning',
			'message' => __( 'There is no API key to deactivate this site for.', 'keyd-stub' ),
		);
	} else {
		$result = keyd_stub_deactivate_site( $key );
		if ( null !== $result['sites'] ) {
			$status          = keyd_stub_get_status();
			$status['sites'] = $result['sites'];
			keyd_stub_set_status( $status );
		}
	}
	set_transient( keyd_stub_flash_name(), array( $result ), MINUTE_IN_SECONDS );
	wp_safe_redirect( admin_url( 'options-general.php?page=' . KEYD_STUB_PAGE ) );
	exit;
}
add_action( 'admin_post_' . KEYD_STUB_DEACTIVATE_ACTION, 'keyd_stub_handle_deactivate' );

/**
 * Prints one notice.
 *
 * @param string   $level   'success', 'error', 'warning' or 'info'.
 * @param string   $message Plain text.
 * @param string[] $details Label => value lines, plain text.
 * @param string   $class   An extra CSS class, for tests and styling.
 */
function keyd_stub_print_notice( $level, $message, array $details = array(), $class = '' ) {
	printf( '<div class="notice notice-%1$s keyd-stub-notice %2$s"><p>%3$s</p>', esc_attr( $level ), esc_attr( $class ), esc_html( $message ) );
	if ( $details ) {
		echo '<ul class="keyd-stub-details">';
		foreach ( $details as $label => $value ) {
			printf( '<li><strong>%1$s:</strong> %2$s</li>', esc_html( $label ), esc_html( $value ) );
		}
		echo '</ul>';
	}
	echo '</div>';
}

/**
 * Shows, on every admin screen, what a webhook event said about the key, to
 * the people who can fix it. It goes away once a new key is validated.
 */
function keyd_stub_admin_notices() {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	$status  = keyd_stub_get_status();
	$screen  = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
	$on_page = $screen && 'settings_page_' . KEYD_STUB_PAGE === $screen->id;
	$where   = $on_page ? '' : ' ' . __( '(Settings > keyd)', 'keyd-stub' );

	// A key replaced by a reset: warn before its grace period ends.
	$rotation = keyd_stub_rotation_message( $status );
	if ( '' !== $rotation ) {
		keyd_stub_print_notice( 'warning', $rotation . $where, array(), 'keyd-stub-rotation' );
	}
	if ( ! is_array( $status['event'] ) || empty( $status['event']['message'] ) ) {
		return;
	}
	$message = (string) $status['event']['message'] . $where;
	$level   = 'warning' === $status['event']['level'] ? 'warning' : 'error';
	keyd_stub_print_notice( $level, $message, array(), 'keyd-stub-event keyd-stub-event-' . sanitize_html_class( str_replace( '.', '-', (string) $status['event']['type'] ) ) );
}
add_action( 'admin_notices', 'keyd_stub_admin_notices' );

/**
 * Renders the settings page.
 */
function keyd_stub_render_settings_page() {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	$settings = keyd_stub_get_settings();
	$status   = keyd_stub_get_status();
	$messages = get_transient( keyd_stub_flash_name() );
	delete_transient( keyd_stub_flash_name() );
	?>
	<div class="wrap keyd-stub">
		<h1><?php esc_html_e( 'keyd API key', 'keyd-stub' ); ?></h1>
		<?php
		if ( is_array( $messages ) ) {
			foreach ( $messages as $m ) {
				keyd_stub_print_notice( $m['level'], $m['message'], isset( $m['details'] ) ? $m['details'] : array(), 'keyd-stub-result' );
			}
		}
		keyd_stub_render_status( $status );
		?>
		<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
			<input type="hidden" name="action" value="<?php echo esc_attr( KEYD_STUB_SAVE_ACTION ); ?>" />
			<?php wp_nonce_field( KEYD_STUB_SAVE_ACTION ); ?>
			<table class="form-table" role="presentation">
				<tr>
					<th scope="row"><label for="keyd-stub-api-key"><?php esc_html_e( 'API key', 'keyd-stub' ); ?></label></th>
					<td>
						<?php if ( keyd_stub_key_from_constant() ) : ?>
							<p><?php esc_html_e( 'The API key is set by KEYD_API_KEY in wp-config.php.', 'keyd-stub' ); ?></p>
						<?php else : ?>
							<input type="password" id="keyd-stub-api-key" name="keyd_stub[api_key]" class="regular-text code" value="<?php echo esc_attr( $settings['api_key'] ); ?>" autocomplete="off" spellcheck="false" maxlength="64" />
							<button type="button" class="button keyd-stub-toggle" data-target="keyd-stub-api-key" aria-controls="keyd-stub-api-key" aria-pressed="false"><?php esc_html_e( 'Show', 'keyd-stub' ); ?></button>
							<p class="description"><?php esc_html_e( '20 letters and digits, from your account or from the account owner.', 'keyd-stub' ); ?></p>
						<?php endif; ?>
					</td>
				</tr>
				<tr>
					<th scope="row"><label for="keyd-stub-url"><?php esc_html_e( 'keyd URL', 'keyd-stub' ); ?></label></th>
					<td>
						<?php if ( defined( 'KEYD_URL' ) ) : ?>
							<code><?php echo esc_html( keyd_stub_get_url() ); ?></code>
							<p class="description"><?php esc_html_e( 'Set by KEYD_URL in wp-config.php.', 'keyd-stub' ); ?></p>
						<?php else : ?>
							<input type="url" id="keyd-stub-url" name="keyd_stub[url]" class="regular-text code" value="<?php echo esc_attr( $settings['url'] ); ?>" placeholder="<?php echo esc_attr( KEYD_STUB_DEFAULT_URL ); ?>" />
						<?php endif; ?>
					</td>
				</tr>
				<tr>
					<th scope="row"><label for="keyd-stub-webhook-secret"><?php esc_html_e( 'Webhook secret', 'keyd-stub' ); ?></label></th>
					<td>
						<?php if ( keyd_stub_secret_from_constant() ) : ?>
							<p><?php esc_html_e( 'The webhook secret is set by KEYD_WEBHOOK_SECRET in wp-config.php.', 'keyd-stub' ); ?></p>
						<?php else : ?>
							<input type="password" id="keyd-stub-webhook-secret" name="keyd_stub[webhook_secret]" class="regular-text code" value="<?php echo esc_attr( $settings['webhook_secret'] ); ?>" autocomplete="off" spellcheck="false" placeholder="whsec_..." />
							<button type="button" class="button keyd-stub-toggle" data-target="keyd-stub-webhook-secret" aria-controls="keyd-stub-webhook-secret" aria-pressed="false"><?php esc_html_e( 'Show', 'keyd-stub' ); ?></button>
						<?php endif; ?>
						<p class="description">
							<?php esc_html_e( 'To hear at once when your key is reset or changed, register this address as a webhook in keyd and paste the secret it gives you:', 'keyd-stub' ); ?>
							<br /><code class="keyd-stub-webhook-url"><?php echo esc_html( rest_url( 'keyd-stub/v1/webhook' ) ); ?></code>
						</p>
					</td>
				</tr>
			</table>
			<?php submit_button( __( 'Save settings & validate', 'keyd-stub' ), 'primary', 'keyd-stub-submit' ); ?>
		</form>
	</div>
	<script>
	// Show/hide toggle for the password-style fields. Inline and tiny, so the
	// page works without an extra asset file.
	document.querySelectorAll( '.keyd-stub-toggle' ).forEach( function ( button ) {
		button.addEventListener( 'click', function () {
			var input = document.getElementById( button.getAttribute( 'data-target' ) );
			var show  = 'password' === input.type;
			input.type = show ? 'text' : 'password';
			button.textContent = show ? <?php echo wp_json_encode( __( 'Hide', 'keyd-stub' ) ); ?> : <?php echo wp_json_encode( __( 'Show', 'keyd-stub' ) ); ?>;
			button.setAttribute( 'aria-pressed', show ? 'true' : 'false' );
		} );
	} );
	</script>
	<?php
}

/**
 * Renders the "Status" box: what is known about the key in use.
 *
 * @param array $status See keyd_stub_get_status().
 */
function keyd_stub_render_status( array $status ) {
	$key = keyd_stub_get_api_key();
	echo '<h2>' . esc_html__( 'Status', 'keyd-stub' ) . '</h2>';
	echo '<div class="keyd-stub-status keyd-stub-status-' . esc_attr( $status['state'] ) . '">';
	if ( '' === $key ) {
		echo '<p>' . esc_html__( 'No API key yet.', 'keyd-stub' ) . '</p>';
	} elseif ( 'valid' === $status['state'] ) {
		// Valid at the last check, but off when keyd cannot be reached and
		// no receipt vouches for the key any more.
		$heading = keyd_stub_is_key_valid() ? __( 'Valid', 'keyd-stub' ) : __( 'Off until keyd can be reached', 'keyd-stub' );
		echo '<p><strong>' . esc_html( $heading ) . '</strong></p><ul class="keyd-stub-details">';
		foreach ( keyd_stub_status_details( $status ) as $label => $value ) {
			printf( '<li><strong>%1$s:</strong> %2$s</li>', esc_html( $label ), esc_html( $value ) );
		}
		/* translators: %s: date and time of the last check. */
		echo '<li>' . esc_html( sprintf( __( 'Last checked %s', 'keyd-stub' ), wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), (int) $status['checked_at'] ) ) ) . '</li>';
		echo '</ul>';
		$rotation = keyd_stub_rotation_message( $status );
		if ( '' !== $rotation ) {
			echo '<p class="keyd-stub-rotation-status">' . esc_html( $rotation ) . '</p>';
		}
		$offline = keyd_stub_offline_message( $status );
		if ( '' !== $offline ) {
			echo '<p class="keyd-stub-offline">' . esc_html( $offline ) . '</p>';
		}
		if ( is_array( $status['sites'] ) ) {
			keyd_stub_render_deactivate_button();
		}
	} elseif ( 'invalid' === $status['state'] ) {
		echo '<p><strong>' . esc_html__( 'Not valid', 'keyd-stub' ) . '</strong> ' . esc_html( $status['message'] ) . '</p>';
	} else {
		echo '<p>' . esc_html__( 'Not checked yet: press "Save settings & validate".', 'keyd-stub' ) . '</p>';
	}
	echo '</div>';
}

/**
 * Renders the "Deactivate this site" button, for a key that counts the sites
 * it is used on.
 */
function keyd_stub_render_deactivate_button() {
	?>
	<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>" class="keyd-stub-deactivate">
		<input type="hidden" name="action" value="<?php echo esc_attr( KEYD_STUB_DEACTIVATE_ACTION ); ?>" />
		<?php wp_nonce_field( KEYD_STUB_DEACTIVATE_ACTION ); ?>
		<?php submit_button( __( 'Deactivate this site', 'keyd-stub' ), 'secondary', 'keyd-stub-deactivate', false ); ?>
		<p class="description"><?php esc_html_e( 'Frees this site\'s activation of the key, for example before the site moves to a new address, so the key can be activated elsewhere.', 'keyd-stub' ); ?></p>
	</form>
	<?php
}
