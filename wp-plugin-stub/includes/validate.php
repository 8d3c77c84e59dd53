<?php
/**
 * The "Save settings & validate" call: POST /v1/validate to keyd, and what
 * each answer means for the site owner.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/** Seconds to wait for keyd before telling the owner it could not be reached. */
const KEYD_STUB_HTTP_TIMEOUT = 10;

/**
 * Asks keyd whether a key is valid.
 *
 * The body is form-encoded (what wp_remote_post() does with an array), which
 * keyd accepts as well as JSON.
 *
 * @param string $key The API key, already checked against KEYD_STUB_KEY_PATTERN.
 * @return array {
 *     @type string $outcome 'verdict' (keyd judged the key), 'unreachable'
 *                           (no HTTP answer) or 'error' (an answer that says
 *                           nothing about the key: 5xx, 429, 400, not JSON).
 *     @type int    $status  HTTP status, 0 when unreachable.
 *     @type array  $body    The decoded JSON body (empty when none).
 *     @type string $error   Transport error text when unreachable.
 *     @type int    $retry_after Seconds from Retry-After, 0 when absent.
 * }
 */
function keyd_stub_call_validate( $key ) {
	$response = wp_remote_post(
		keyd_stub_get_url() . '/v1/validate',
		array(
			'timeout'     => KEYD_STUB_HTTP_TIMEOUT,
			// A redirect would re-send the key somewhere we did not choose.
			'redirection' => 0,
			'headers'     => array( 'Accept' => 'application/json' ),
			'body'        => array(
				'key'            => $key,
				'site'           => home_url(),
				'plugin'         => KEYD_STUB_SLUG,
				'plugin_version' => KEYD_STUB_VERSION,
				'wp_version'     => get_bloginfo( 'version' ),
				// A signed receipt keeps the key working while keyd cannot
				// be reached (see keyd_stub_is_key_valid()).
				'receipt'        => '1',
			),
		)
	);

	if ( is_wp_error( $response ) ) {
		return array(
			'outcome'     => 'unreachable',
			'status'      => 0,
			'body'        => array(),
			'error'       => $response->get_error_message(),
			'retry_after' => 0,
		);
	}

	$status = (int) wp_remote_retrieve_response_code( $response );
	$body   = json_decode( (string) wp_remote_retrieve_body( $response ), true );
	if ( ! is_array( $body ) ) {
		$body = array();
	}

	// keyd judged the key when it answered 200, 401 or 403 with its usual
	// body. Anything else (rate limit, a bad request, a server error, a proxy
	// page) is not a verdict on the key, so the last known state is kept.
	$is_verdict = in_array( $status, array( 200, 401, 403 ), true )
		&& isset( $body['valid'], $body['code'] ) && is_string( $body['code'] );

	return array(
		'outcome'     => $is_verdict ? 'verdict' : 'error',
		'status'      => $status,
		'body'        => $body,
		'error'       => '',
		'retry_after' => (int) wp_remote_retrieve_header( $response, 'retry-after' ),
	);
}

/**
 * Formats an RFC 3339 time from keyd in the site's date and time format.
 *
 * @param string $rfc3339 E.g. "2025-03-01T12:00:00Z".
 * @return string The formatted date, or '' when it cannot be read.
 */
function keyd_stub_format_time( $rfc3339 ) {
	$ts = is_string( $rfc3339 ) && '' !== $rfc3339 ? strtotime( $rfc3339 ) : false;
	if ( false === $ts ) {
		return '';
	}
	return wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), $ts );
}

/**
 * Formats a unix time in the site's date and time format and timezone.
 *
 * @param int $ts Unix seconds.
 * @return string
 */
function keyd_stub_format_unix( $ts ) {
	return wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), (int) $ts );
}

/**
 * keyd's receipt keys as last fetched (a decoded JWKS).
 *
 * @return array
 */
function keyd_stub_receipt_keys() {
	$keys = get_option( KEYD_STUB_OPTION_RECEIPT_KEYS, array() );
	return is_array( $keys ) ? $keys : array();
}

/**
 * Fetches keyd's published receipt keys when the stored ones do not include
 * the key that signed $receipt (the first receipt, or after keyd rotated
 * its signing key). Done while keyd answers, so the keys are at hand when
 * it does not.
 *
 * @param string $receipt A receipt keyd just sent.
 */
function keyd_stub_update_receipt_keys( $receipt ) {
	if ( KEYD_STUB_RECEIPT_UNKNOWN_KEY !== keyd_stub_receipt_verify( $receipt, keyd_stub_receipt_keys() )['result'] ) {
		return;
	}
	$response = wp_remote_get(
		keyd_stub_get_url() . '/.well-known/keyd-receipt-keys.json',
		array(
			'timeout'     => KEYD_STUB_HTTP_TIMEOUT,
			'redirection' => 0,
		)
	);
	if ( is_wp_error( $response ) || 200 !== (int) wp_remote_retrieve_response_code( $response ) ) {
		return;
	}
	$set = json_decode( (string) wp_remote_retrieve_body( $response ), true );
	if ( is_array( $set ) && isset( $set['keys'] ) && is_array( $set['keys'] ) ) {
		update_option( KEYD_STUB_OPTION_RECEIPT_KEYS, $set, false );
	}
}

/**
 * Checks the stored receipt of the key in use at $now, for this site and
 * this key.
 *
 * @param array    $status See keyd_stub_get_status().
 * @param int|null $now    Unix time (default: now).
 * @return array See keyd_stub_receipt_verify(); result 'none' without a receipt.
 */
function keyd_stub_check_receipt( array $status, $now = null ) {
	if ( '' === $status['receipt'] ) {
		return array(
			'result' => 'none',
			'claims' => array(),
		);
	}
	$check = keyd_stub_receipt_verify( $status['receipt'], keyd_stub_receipt_keys(), $now, home_url() );
	if ( isset( $check['claims']['key_id'] ) && '' !== $status['key_id'] && $check['claims']['key_id'] !== $status['key_id'] ) {
		$check['result'] = KEYD_STUB_RECEIPT_MALFORMED; // a receipt for another key
	}
	return $check;
}

/**
 * What the site owner is told while keyd cannot be reached: whether the
 * stored receipt keeps the key working, and until when. '' when keyd
 * answered at the last check, or when no receipt was ever stored.
 *
 * @param array    $status See keyd_stub_get_status().
 * @param int|null $now    Unix time (default: now).
 * @return string A plain sentence, not yet escaped.
 */
function keyd_stub_offline_message( array $status, $now = null ) {
	if ( empty( $status['offline_since'] ) || 'valid' !== $status['state'] || '' === $status['receipt'] ) {
		return '';
	}
	$check = keyd_stub_check_receipt( $status, $now );
	$c     = $check['claims'];
	if ( KEYD_STUB_RECEIPT_VALID === $check['result'] ) {
		/* translators: 1: date and time keyd last confirmed the key, 2: date and time until which it stays accepted. */
		return sprintf( __( 'keyd could not be reached; your key was last confirmed at %1$s and stays accepted until %2$s.', 'keyd-stub' ), keyd_stub_format_unix( $c['iat'] ), keyd_stub_format_unix( $c['exp'] ) );
	}
	if ( KEYD_STUB_RECEIPT_EXPIRED === $check['result'] ) {
		/* translators: 1: date and time keyd last confirmed the key, 2: date and time that confirmation ran out. */
		return sprintf( __( 'keyd could not be reached; your key was last confirmed at %1$s, and that confirmation ran out at %2$s. The plugin is off until keyd answers again.', 'keyd-stub' ), keyd_stub_format_unix( $c['iat'] ), keyd_stub_format_unix( $c['exp'] ) );
	}
	return __( 'keyd could not be reached, and the confirmation of your key stored on this site could not be verified. The plugin is off until keyd answers again.', 'keyd-stub' );
}

/**
 * Notes that keyd could not be reached, for the key in use (whose receipt
 * then decides whether it keeps working), and says what that means.
 *
 * @return string The sentence of keyd_stub_offline_message(), or ''.
 */
function keyd_stub_note_unreachable() {
	$status = keyd_stub_get_status();
	if ( 'valid' !== $status['state'] ) {
		return '';
	}
	if ( empty( $status['offline_since'] ) ) {
		$status['offline_since'] = time();
		keyd_stub_set_status( $status );
	}
	return keyd_stub_offline_message( $status );
}

/**
 * The warning for a key that a reset replaced and that works only until
 * the end of its grace period; '' for any other key.
 *
 * @param array $status See keyd_stub_get_status().
 * @return string A plain sentence, not yet escaped.
 */
function keyd_stub_rotation_message( array $status ) {
	if ( 'valid' !== $status['state'] || ! is_array( $status['rotation'] ) ) {
		return '';
	}
	$replaced = keyd_stub_format_time( isset( $status['rotation']['replaced_at'] ) ? $status['rotation']['replaced_at'] : '' );
	$ends     = keyd_stub_format_time( isset( $status['rotation']['grace_ends_at'] ) ? $status['rotation']['grace_ends_at'] : '' );
	if ( '' === $ends ) {
		return '';
	}
	if ( '' === $replaced ) {
		/* translators: %s: date and time the key stops working. */
		return sprintf( __( 'Your API key was replaced by a new one and stops working on %s. Paste the new key from your account before then.', 'keyd-stub' ), $ends );
	}
	/* translators: 1: date and time the key was replaced, 2: date and time it stops working. */
	return sprintf( __( 'Your API key was replaced by a new one on %1$s and stops working on %2$s. Paste the new key from your account before then.', 'keyd-stub' ), $replaced, $ends );
}

/**
 * The sentence shown to the site owner for a validate answer code.
 *
 * Every code of the contract has its own sentence; a code this plugin does not
 * know yet falls back to keyd's own message, as API.md asks clients to
 * tolerate new codes.
 *
 * @param string $code    The `code` field of keyd's answer.
 * @param array  $context Optional: message (keyd's sentence), expires_at,
 *                        retry_after, status.
 * @return string A plain sentence, not yet escaped.
 */
function keyd_stub_code_message( $code, array $context = array() ) {
	$expired_on = isset( $context['expires_at'] ) ? keyd_stub_format_time( $context['expires_at'] ) : '';
	switch ( $code ) {
		case 'VALID':
			return __( 'Your API key is valid.', 'keyd-stub' );
		case 'INVALID_REQUEST':
			return __( 'keyd could not understand the request from this site. This is a problem in the plugin, not in your key: please report it to the plugin author.', 'keyd-stub' );
		case 'MALFORMED':
			return __( 'This is not an API key: a key is exactly 20 letters and digits. Check that you copied all of it.', 'keyd-stub' );
		case 'NOT_FOUND':
			return __( 'This key does not exist. Check that you copied all of it, or ask the account owner for a key.', 'keyd-stub' );
		case 'REVOKED':
			return __( 'This key no longer works: it was reset or deleted. Paste the current key from your account.', 'keyd-stub' );
		case 'EXPIRED':
			if ( '' !== $expired_on ) {
				/* translators: %s: date and time the key expired. */
				return sprintf( __( 'This key expired on %s. Ask the account owner for a new one.', 'keyd-stub' ), $expired_on );
			}
			return __( 'This key has expired. Ask the account owner for a new one.', 'keyd-stub' );
		case 'INACTIVE':
			return __( 'This key was deactivated by the account owner. Ask them to reactivate it or to give you a new one.', 'keyd-stub' );
		case 'ACCOUNT_SUSPENDED':
			return __( 'The account this key belongs to is suspended. The account owner needs to contact the service to lift the suspension.', 'keyd-stub' );
		case 'SCOPE_DENIED':
			return __( 'This key is not allowed to use the features of this plugin. Ask the account owner to allow them for this key.', 'keyd-stub' );
		case 'SITE_NOT_ALLOWED':
			/* translators: %s: this site's address. */
			return sprintf( __( 'This key may only be used on other sites, not on %s. Ask the account owner to add this site to the key.', 'keyd-stub' ), home_url() );
		case 'SITE_LIMIT_REACHED':
			$said = isset( $context['message'] ) && is_string( $context['message'] ) ? trim( $context['message'] ) : '';
			return trim(
				/* translators: %s: this site's address. */
				sprintf( __( 'This key is already active on as many sites as it may be, so it cannot be activated on %s.', 'keyd-stub' ), home_url() )
				. ( '' !== $said ? ' (' . $said . ')' : '' ) . ' '
				. __( 'Deactivate it on a site that no longer uses it (Settings > keyd there, "Deactivate this site"), or ask the account owner to release a site.', 'keyd-stub' )
			);
		case 'KEY_SPEND_LIMIT_REACHED':
			$limit = isset( $context['spend_limit'] ) && is_array( $context['spend_limit'] ) ? $context['spend_limit'] : array();
			return keyd_stub_spend_limit_message( $limit );
		case 'RATE_LIMITED':
			$wait = isset( $context['retry_after'] ) ? (int) $context['retry_after'] : 0;
			if ( $wait > 0 ) {
				/* translators: %d: number of seconds. */
				return sprintf( _n( 'Too many checks for this account right now. Try again in %d second.', 'Too many checks for this account right now. Try again in %d seconds.', $wait, 'keyd-stub' ), $wait );
			}
			return __( 'Too many checks for this account right now. Try again in a minute.', 'keyd-stub' );
	}

	$message = isset( $context['message'] ) && is_string( $context['message'] ) ? trim( $context['message'] ) : '';
	if ( '' !== $code && '' !== $message ) {
		/* translators: 1: answer code, 2: the service's explanation. */
		return sprintf( __( 'The key was not accepted (%1$s): %2$s', 'keyd-stub' ), $code, $message );
	}
	if ( '' !== $code ) {
		/* translators: %s: answer code. */
		return sprintf( __( 'The key was not accepted (%s).', 'keyd-stub' ), $code );
	}
	$http = isset( $context['status'] ) ? (int) $context['status'] : 0;
	/* translators: %d: HTTP status code. */
	return sprintf( __( 'keyd gave an unexpected answer (HTTP %d). Try again later.', 'keyd-stub' ), $http );
}

/**
 * Validates a key with keyd and records the outcome.
 *
 * A key that is not 20 letters and digits is refused here, before any network
 * call. When keyd cannot be reached, or answers without judging the key, the
 * stored key and its last known state stay as they were.
 *
 * @param string $key       The key to check.
 * @param bool   $store_key Whether a verdict from keyd should also make this
 *                          the stored key (false when it comes from KEYD_API_KEY).
 * @return array { @type string $level 'success', 'error', 'warning'; @type string $message; @type array $details }
 */
function keyd_stub_validate_key( $key, $store_key ) {
	if ( ! preg_match( KEYD_STUB_KEY_PATTERN, $key ) ) {
		return array(
			'level'   => 'error',
			'message' => __( 'This is not an API key: a key is exactly 20 letters and digits. Check that you copied all of it. The key was not saved.', 'keyd-stub' ),
			'details' => array(),
		);
	}

	$result = keyd_stub_call_validate( $key );

	if ( 'unreachable' === $result['outcome'] ) {
		$message = sprintf(
			/* translators: 1: keyd URL, 2: error text from the HTTP client. */
			__( 'Could not reach keyd at %1$s (%2$s). The key was not checked: the previous key and its status are kept. Try again later.', 'keyd-stub' ),
			keyd_stub_get_url(),
			$result['error']
		);
		$offline = keyd_stub_note_unreachable();
		return array(
			'level'   => 'error',
			'message' => '' === $offline ? $message : $message . ' ' . $offline,
			'details' => array(),
		);
	}

	$body = $result['body'];
	$code = isset( $body['code'] ) && is_string( $body['code'] ) ? $body['code'] : '';

	if ( 'error' === $result['outcome'] ) {
		$message = keyd_stub_code_message(
			$code,
			array(
				'message'     => isset( $body['message'] ) ? $body['message'] : '',
				'retry_after' => $result['retry_after'],
				'status'      => $result['status'],
			)
		);
		$message .= ' ' . __( 'The previous key and its status are kept.', 'keyd-stub' );
		// A 5xx is most often a proxy in front of a keyd that is down.
		$offline = $result['status'] >= 500 ? keyd_stub_note_unreachable() : '';
		return array(
			'level'   => 'RATE_LIMITED' === $code ? 'warning' : 'error',
			'message' => '' === $offline ? $message : $message . ' ' . $offline,
			'details' => array(),
		);
	}

	// A verdict: from now on this is the key in use.
	if ( $store_key ) {
		$settings            = keyd_stub_get_settings();
		$settings['api_key'] = $key;
		update_option( KEYD_STUB_OPTION_SETTINGS, $settings );
	}

	if ( true === $body['valid'] && 'VALID' === $code ) {
		$k       = isset( $body['key'] ) && is_array( $body['key'] ) ? $body['key'] : array();
		$account = isset( $body['account'] ) && is_array( $body['account'] ) ? $body['account'] : array();
		$status  = array(
			'state'      => 'valid',
			'code'       => 'VALID',
			'message'    => '',
			'key_id'     => isset( $k['id'] ) ? (string) $k['id'] : '',
			// keyd's hint is the key's last 4 characters; fall back to
			// computing it so events can always be matched.
			'hint'       => isset( $k['hint'] ) ? (string) $k['hint'] : substr( $key, -4 ),
			'type'       => isset( $k['type'] ) ? (string) $k['type'] : '',
			'name'       => isset( $k['name'] ) ? (string) $k['name'] : '',
			'expires_at' => isset( $k['expires_at'] ) ? (string) $k['expires_at'] : '',
			'plan'       => isset( $account['plan'] ) && is_string( $account['plan'] ) ? $account['plan'] : '',
			'credits'    => isset( $account['credits'] ) && is_numeric( $account['credits'] ) ? (int) $account['credits'] : null,
			'sites'      => keyd_stub_read_sites( $body ),
			'spend_limit' => isset( $body['spend_limit'] ) && is_array( $body['spend_limit'] ) ? $body['spend_limit'] : null,
			'checked_at' => time(),
			'event'      => null,
			'receipt'    => isset( $body['receipt'] ) && is_string( $body['receipt'] ) ? $body['receipt'] : '',
			'rotation'   => isset( $body['rotation']['grace_ends_at'] ) && is_string( $body['rotation']['grace_ends_at'] ) ? array(
				'replaced_at'   => isset( $body['rotation']['replaced_at'] ) && is_string( $body['rotation']['replaced_at'] ) ? $body['rotation']['replaced_at'] : '',
				'grace_ends_at' => $body['rotation']['grace_ends_at'],
			) : null,
		);
		keyd_stub_set_status( $status );
		if ( '' !== $status['receipt'] ) {
			keyd_stub_update_receipt_keys( $status['receipt'] );
		}
		$rotation = keyd_stub_rotation_message( $status );
		return array(
			'level'   => '' === $rotation ? 'success' : 'warning',
			'message' => '' === $rotation ? keyd_stub_code_message( 'VALID' ) : keyd_stub_code_message( 'VALID' ) . ' ' . $rotation,
			'details' => keyd_stub_status_details( $status ),
		);
	}

	$previous = keyd_stub_get_status();
	$message  = keyd_stub_code_message(
		$code,
		array(
			'message'    => isset( $body['message'] ) ? $body['message'] : '',
			// keyd's failure body has no date; use one it sent anyway, or the
			// expiry we learnt when this same key was last valid.
			'expires_at' => isset( $body['expires_at'] ) && is_string( $body['expires_at'] ) ? $body['expires_at'] : $previous['expires_at'],
			'status'     => $result['status'],
		)
	);
	keyd_stub_set_status(
		array(
			'state'      => 'invalid',
			'code'       => $code,
			'message'    => $message,
			// Keep what identifies the key, so later events still match it.
			'key_id'     => $previous['key_id'],
			'hint'       => substr( $key, -4 ),
			'type'       => $previous['type'],
			'name'       => $previous['name'],
			'expires_at' => $previous['expires_at'],
			'checked_at' => time(),
			'event'      => null,
		)
	);
	return array(
		'level'   => 'error',
		'message' => $message,
		'details' => array(),
	);
}

/**
 * Plain-words lines about a valid key: type, alias name, expiry, credits.
 *
 * @param array $status See keyd_stub_get_status().
 * @return string[] Label => value pairs, not yet escaped.
 */
function keyd_stub_status_details( array $status ) {
	$details = array();
	if ( 'alias' === $status['type'] ) {
		$details[ __( 'Key type', 'keyd-stub' ) ] = '' !== $status['name']
			/* translators: %s: alias name. */
			? sprintf( __( 'Alias "%s"', 'keyd-stub' ), $status['name'] )
			: __( 'Alias', 'keyd-stub' );
	} elseif ( 'primary' === $status['type'] ) {
		$details[ __( 'Key type', 'keyd-stub' ) ] = __( 'Primary key of the account', 'keyd-stub' );
	} elseif ( '' !== $status['type'] ) {
		$details[ __( 'Key type', 'keyd-stub' ) ] = $status['type'];
	}
	if ( '' !== $status['hint'] ) {
		/* translators: %s: last 4 characters of the key. */
		$details[ __( 'Key', 'keyd-stub' ) ] = sprintf( __( 'ending in %s', 'keyd-stub' ), $status['hint'] );
	}
	$expires                                 = keyd_stub_format_time( $status['expires_at'] );
	$details[ __( 'Expires', 'keyd-stub' ) ] = '' !== $expires ? $expires : __( 'Never (permanent key)', 'keyd-stub' );
	if ( '' !== $status['plan'] ) {
		$details[ __( 'Plan', 'keyd-stub' ) ] = $status['plan'];
	}
	if ( null !== $status['credits'] ) {
		$details[ __( 'Credits left', 'keyd-stub' ) ] = number_format_i18n( (int) $status['credits'] );
	}
	if ( is_array( $status['spend_limit'] ) ) {
		$details[ __( 'Spend limit', 'keyd-stub' ) ] = keyd_stub_spend_limit_message( $status['spend_limit'] );
	}
	if ( is_array( $status['sites'] ) ) {
		$details[ __( 'Site activations', 'keyd-stub' ) ] = sprintf(
			/* translators: 1: sites using the key, 2: sites it may be used on. */
			_n( '%1$d of %2$d site uses this key', '%1$d of %2$d sites use this key', (int) $status['sites']['used'], 'keyd-stub' ),
			(int) $status['sites']['used'],
			(int) $status['sites']['limit']
		);
	}
	return $details;
}

/**
 * The `sites` of a keyd answer: how many of the key's site slots are used.
 *
 * @param array $body A decoded answer of validate or of POST /v1/sites/deactivate.
 * @return array|null array( 'used' => n, 'limit' => m ), or null when the key
 *                    does not count its sites.
 */
function keyd_stub_read_sites( array $body ) {
	if ( ! isset( $body['sites'] ) || ! is_array( $body['sites'] ) || ! isset( $body['sites']['used'], $body['sites']['limit'] ) ) {
		return null;
	}
	return array(
		'used'  => (int) $body['sites']['used'],
		'limit' => (int) $body['sites']['limit'],
	);
}

/**
 * What a key's own spend limit leaves, in plain words.
 *
 * @param array $limit keyd's spend_limit: limit, period (day, month, total),
 *                     spent, remaining, resets_at.
 * @return string
 */
function keyd_stub_spend_limit_message( array $limit ) {
	$remaining = isset( $limit['remaining'] ) ? (int) $limit['remaining'] : 0;
	$max       = isset( $limit['limit'] ) ? (int) $limit['limit'] : 0;
	$period    = isset( $limit['period'] ) ? (string) $limit['period'] : '';
	$resets    = isset( $limit['resets_at'] ) && is_string( $limit['resets_at'] ) ? keyd_stub_format_time( $limit['resets_at'] ) : '';
	$when      = array(
		'day'   => __( 'today', 'keyd-stub' ),
		'month' => __( 'this month', 'keyd-stub' ),
		'total' => __( 'in total', 'keyd-stub' ),
	);
	$when      = isset( $when[ $period ] ) ? $when[ $period ] : '';
	if ( $remaining > 0 ) {
		/* translators: 1: units left, 2: units allowed, 3: "today", "this month" or "in total". */
		$message = sprintf( __( '%1$s of %2$s units left %3$s.', 'keyd-stub' ), number_format_i18n( $remaining ), number_format_i18n( $max ), $when );
	} else {
		/* translators: 1: units allowed, 2: "today", "this month" or "in total". */
		$message = sprintf( __( 'This key has used all %1$s units it may spend %2$s: the account owner set this limit for this site. Nothing more is charged until it resets or the owner raises it.', 'keyd-stub' ), number_format_i18n( $max ), $when );
	}
	if ( '' !== $resets ) {
		/* translators: %s: date and time the limit resets. */
		$message .= ' ' . sprintf( __( 'It resets on %s.', 'keyd-stub' ), $resets );
	}
	return $message;
}

/**
 * "Deactivate this site": asks keyd to free the site slot this site holds of
 * the key (POST /v1/sites/deactivate), for a site that moves to a new
 * address or stops using the key.
 *
 * @param string $key The key in use.
 * @return array { @type string $level; @type string $message; @type array|null $sites }
 */
function keyd_stub_deactivate_site( $key ) {
	$response = wp_remote_post(
		keyd_stub_get_url() . '/v1/sites/deactivate',
		array(
			'timeout'     => KEYD_STUB_HTTP_TIMEOUT,
			'redirection' => 0,
			'headers'     => array(
				'Accept'       => 'application/json',
				'Content-Type' => 'application/json',
				'X-API-Key'    => $key,
			),
			'body'        => wp_json_encode( array( 'site' => home_url() ) ),
		)
	);
	return keyd_stub_read_deactivate( $response );
}

/**
 * Reads keyd's answer to POST /v1/sites/deactivate.
 *
 * @param array|WP_Error $response What wp_remote_post() returned.
 * @return array { @type string $level; @type string $message; @type array|null $sites }
 */
function keyd_stub_read_deactivate( $response ) {
	if ( is_wp_error( $response ) ) {
		return array(
			'level'   => 'error',
			/* translators: %s: keyd URL. */
			'message' => sprintf( __( 'Could not reach keyd at %s: this site was not deactivated. Try again later.', 'keyd-stub' ), keyd_stub_get_url() ),
			'sites'   => null,
		);
	}
	$status = isset( $response['response']['code'] ) ? (int) $response['response']['code'] : 0;
	$body   = json_decode( isset( $response['body'] ) ? (string) $response['body'] : '', true );
	$body   = is_array( $body ) ? $body : array();
	if ( 200 === $status && isset( $body['released'] ) ) {
		$sites = keyd_stub_read_sites( $body );
		if ( true === $body['released'] ) {
			$message = __( 'This site was deactivated: it no longer holds one of the key\'s site activations, and the key can be activated on another site.', 'keyd-stub' );
		} else {
			$message = __( 'This site held none of the key\'s site activations: nothing to deactivate.', 'keyd-stub' );
		}
		if ( null !== $sites ) {
			/* translators: 1: sites using the key, 2: sites it may be used on. */
			$message .= ' ' . sprintf( __( 'Sites using the key now: %1$d of %2$d.', 'keyd-stub' ), $sites['used'], $sites['limit'] );
		}
		return array(
			'level'   => 'success',
			'message' => $message,
			'sites'   => $sites,
		);
	}
	$error = isset( $body['error'] ) && is_array( $body['error'] ) ? $body['error'] : array();
	$code  = isset( $error['code'] ) && is_string( $error['code'] ) ? $error['code'] : '';
	return array(
		'level'   => 'error',
		'message' => __( 'This site was not deactivated.', 'keyd-stub' ) . ' ' . keyd_stub_code_message(
			$code,
			array(
				'message' => isset( $error['message'] ) ? $error['message'] : '',
				'status'  => $status,
			)
		),
		'sites'   => null,
	);
}
