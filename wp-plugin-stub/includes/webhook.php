<?php
/**
 * The webhook receiver: keyd tells the site at once when its key is reset or
 * revoked, or when an alias changes.
 *
 * URL: /wp-json/keyd-stub/v1/webhook (with plain permalinks:
 * /?rest_route=/keyd-stub/v1/webhook). Answers, as API.md fixes them:
 * 200 good signature (also for a duplicate, an event older than one already
 * applied, or an event we do not act on), 401 bad or missing signature, 400
 * timestamp more than 5 minutes off.
 *
 * @package KeydStub
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/** How long a webhook-id is remembered. keyd retries for about a day. */
const KEYD_STUB_SEEN_TTL = 3 * DAY_IN_SECONDS;

/** At most this many webhook-ids are remembered. */
const KEYD_STUB_SEEN_MAX = 500;

/** At most this many keys have their last applied sequence remembered. */
const KEYD_STUB_SEQUENCE_MAX = 50;

/**
 * Registers the REST route.
 */
function keyd_stub_register_webhook_route() {
	register_rest_route(
		'keyd-stub/v1',
		'/webhook',
		array(
			'methods'             => 'POST',
			'callback'            => 'keyd_stub_handle_webhook',
			// Anyone may call it: the signature, checked in the callback, is
			// what proves the message comes from keyd.
			'permission_callback' => '__return_true',
		)
	);
}
add_action( 'rest_api_init', 'keyd_stub_register_webhook_route' );

/**
 * Handles one webhook delivery.
 *
 * @param WP_REST_Request $request The request.
 * @return WP_REST_Response|WP_Error
 */
function keyd_stub_handle_webhook( WP_REST_Request $request ) {
	// WP_REST_Request stores header names lowercased with "-" turned into
	// "_"; get_header() accepts either spelling. The body must be the raw
	// bytes: decoding and re-encoding the JSON would break the signature.
	$msg_id    = (string) $request->get_header( 'webhook-id' );
	$timestamp = (string) $request->get_header( 'webhook-timestamp' );
	$signature = (string) $request->get_header( 'webhook-signature' );
	$body      = (string) $request->get_body();

	$secret = keyd_stub_get_webhook_secret();
	if ( '' === $secret ) {
		return new WP_Error( 'keyd_stub_no_secret', __( 'No webhook secret is configured on this site.', 'keyd-stub' ), array( 'status' => 401 ) );
	}

	$check = keyd_stub_webhook_verify( $secret, $msg_id, $timestamp, $body, $signature );
	if ( KEYD_STUB_SIG_BAD_TIMESTAMP === $check ) {
		return new WP_Error( 'keyd_stub_bad_timestamp', __( 'The webhook timestamp is too far from this server\'s clock.', 'keyd-stub' ), array( 'status' => 400 ) );
	}
	if ( KEYD_STUB_SIG_VALID !== $check ) {
		return new WP_Error( 'keyd_stub_bad_signature', __( 'The webhook signature is not valid.', 'keyd-stub' ), array( 'status' => 401 ) );
	}

	// Delivery is at least once: the same message may come again (a retry
	// after a timeout, a manual resend). Act on each webhook-id only once.
	if ( keyd_stub_webhook_seen( $msg_id ) ) {
		return new WP_REST_Response(
			array(
				'ok'        => true,
				'duplicate' => true,
			),
			200
		);
	}

	$event = json_decode( $body, true );
	if ( ! is_array( $event ) || ! isset( $event['type'] ) || ! is_string( $event['type'] ) ) {
		// Signed by keyd but not an event we can read: acknowledge it anyway,
		// as a retry would not make it readable.
		keyd_stub_webhook_remember( $msg_id );
		return new WP_REST_Response( array( 'ok' => true, 'acted' => false ), 200 );
	}
	$data = isset( $event['data'] ) && is_array( $event['data'] ) ? $event['data'] : array();
	// keyd numbers each account's events in commit order; a message from
	// before keyd did has no number and is applied as it comes.
	$sequence = isset( $event['sequence'] ) && is_int( $event['sequence'] ) && $event['sequence'] > 0 ? $event['sequence'] : null;
	$acted    = keyd_stub_apply_event( $event['type'], $data, $sequence );
	keyd_stub_webhook_remember( $msg_id );

	return new WP_REST_Response( array( 'ok' => true, 'acted' => $acted ), 200 );
}

/**
 * Whether a webhook-id was already handled.
 *
 * @param string $msg_id The webhook-id header.
 * @return bool
 */
function keyd_stub_webhook_seen( $msg_id ) {
	$seen = get_option( KEYD_STUB_OPTION_SEEN, array() );
	return is_array( $seen ) && isset( $seen[ $msg_id ] );
}

/**
 * Records a handled webhook-id, forgetting old ones so the option stays small.
 *
 * @param string $msg_id The webhook-id header.
 */
function keyd_stub_webhook_remember( $msg_id ) {
	$seen = get_option( KEYD_STUB_OPTION_SEEN, array() );
	if ( ! is_array( $seen ) ) {
		$seen = array();
	}
	$now              = time();
	$seen[ $msg_id ] = $now;
	$seen             = array_filter(
		$seen,
		static function ( $at ) use ( $now ) {
			return $now - (int) $at < KEYD_STUB_SEEN_TTL;
		}
	);
	if ( count( $seen ) > KEYD_STUB_SEEN_MAX ) {
		asort( $seen );
		$seen = array_slice( $seen, -KEYD_STUB_SEEN_MAX, null, true );
	}
	update_option( KEYD_STUB_OPTION_SEEN, $seen, false );
}

/**
 * Reads a value at one of several places in the event data.
 *
 * keyd's payloads put the key under data.key_id / data.hint, data.key.{id,hint}
 * or data.alias.{id,hint} depending on the event; looking in each place keeps
 * the receiver working if a payload is reshaped.
 *
 * @param array    $data  The event's data object.
 * @param string[] $paths Dotted paths, e.g. 'previous.id'.
 * @return string[] The non-empty string values found.
 */
function keyd_stub_event_values( array $data, array $paths ) {
	$values = array();
	foreach ( $paths as $path ) {
		$node = $data;
		foreach ( explode( '.', $path ) as $part ) {
			if ( ! is_array( $node ) || ! array_key_exists( $part, $node ) ) {
				$node = null;
				break;
			}
			$node = $node[ $part ];
		}
		if ( is_string( $node ) && '' !== $node ) {
			$values[] = $node;
		}
	}
	return array_values( array_unique( $values ) );
}

/**
 * Whether an event is about the key this site uses.
 *
 * Ids are compared when both sides have one; the hint (last 4 characters)
 * only when the event or the site lacks an id.
 *
 * @param array    $status     See keyd_stub_get_status().
 * @param string   $key        The key in use.
 * @param string[] $ids        Key ids the event names.
 * @param string[] $hints      Hints the event names.
 * @return bool
 */
function keyd_stub_event_matches( array $status, $key, array $ids, array $hints ) {
	if ( '' === $key ) {
		return false;
	}
	if ( '' !== $status['key_id'] && ! empty( $ids ) ) {
		return in_array( $status['key_id'], $ids, true );
	}
	return in_array( substr( $key, -4 ), $hints, true );
}

/**
 * Records that an event with this sequence about the key in use is being
 * applied, unless one with the same or a later sequence already was.
 *
 * keyd starts deliveries in order, but a message that failed is retried
 * after the ones behind it went out, so an old event (say the
 * alias.deactivated before an alias.reactivated) can arrive last. Keeping
 * the last sequence applied per key tells such a straggler apart.
 *
 * @param string $key      The key in use.
 * @param int    $sequence The event's sequence.
 * @return bool False when the event is older than one already applied.
 */
function keyd_stub_sequence_advance( $key, $sequence ) {
	$last = get_option( KEYD_STUB_OPTION_SEQUENCE, array() );
	if ( ! is_array( $last ) ) {
		$last = array();
	}
	$ref = keyd_stub_key_fingerprint( $key );
	if ( isset( $last[ $ref ] ) && (int) $last[ $ref ] >= $sequence ) {
		return false;
	}
	// Most recently used last, so the oldest keys are the ones forgotten.
	unset( $last[ $ref ] );
	$last[ $ref ] = $sequence;
	if ( count( $last ) > KEYD_STUB_SEQUENCE_MAX ) {
		$last = array_slice( $last, -KEYD_STUB_SEQUENCE_MAX, null, true );
	}
	update_option( KEYD_STUB_OPTION_SEQUENCE, $last, false );
	return true;
}

/**
 * Acts on a verified event.
 *
 * @param string   $type     The event type, e.g. "key.reset".
 * @param array    $data     The event's data object.
 * @param int|null $sequence The event's sequence (null: not numbered).
 * @return bool Whether the event concerned the key in use and was applied.
 */
function keyd_stub_apply_event( $type, array $data, $sequence = null ) {
	$key    = keyd_stub_get_api_key();
	$status = keyd_stub_get_status();

	$id_paths   = array( 'key_id', 'key.id', 'alias.id', 'alias_id', 'id' );
	$hint_paths = array( 'hint', 'key.hint', 'alias.hint' );
	if ( 'key.reset' === $type && ( isset( $data['previous'] ) || isset( $data['previous_key_id'] ) ) ) {
		// After a reset, key_id names the new key and previous names the
		// one that stopped working. Matching only the previous key keeps a
		// late retry from flagging a site that already has the new key.
		$id_paths   = array( 'previous.id', 'previous_key_id', 'previous.key_id' );
		$hint_paths = array( 'previous.hint', 'previous_hint' );
	}
	$ids   = keyd_stub_event_values( $data, $id_paths );
	$hints = keyd_stub_event_values( $data, $hint_paths );
	if ( ! keyd_stub_event_matches( $status, $key, $ids, $hints ) ) {
		return false;
	}
	// Every event about the key counts, those we do not act on too: an
	// alias.reactivated is what makes a late alias.deactivated stale.
	if ( null !== $sequence && ! keyd_stub_sequence_advance( $key, $sequence ) ) {
		return false;
	}

	$names = keyd_stub_event_values( $data, array( 'name', 'alias.name', 'key.name' ) );
	$name  = isset( $names[0] ) ? $names[0] : $status['name'];
	$when  = keyd_stub_event_values( $data, array( 'expires_at', 'alias.expires_at', 'key.expires_at', 'previous.valid_until', 'valid_until' ) );
	$date  = isset( $when[0] ) ? keyd_stub_format_time( $when[0] ) : '';

	$level = 'error';
	switch ( $type ) {
		case 'key.reset':
			$message = __( 'Your API key was reset: paste the new one.', 'keyd-stub' );
			$until   = keyd_stub_event_values( $data, array( 'previous.valid_until' ) );
			if ( isset( $until[0] ) && strtotime( $until[0] ) > time() ) {
				// A reset with a grace period: the old key still works a while.
				/* translators: %s: date and time. */
				$message .= ' ' . sprintf( __( 'The old key stops working on %s.', 'keyd-stub' ), keyd_stub_format_time( $until[0] ) );
			}
			$code = 'REVOKED';
			break;
		case 'key.revoked':
			$message = __( 'Your API key was revoked: paste a new one.', 'keyd-stub' );
			$code    = 'REVOKED';
			break;
		case 'alias.deactivated':
			/* translators: %s: alias name. */
			$message = sprintf( __( 'Your API key (alias "%s") was deactivated by the account owner: ask them to reactivate it, or paste a new key.', 'keyd-stub' ), $name );
			$code    = 'INACTIVE';
			break;
		case 'alias.deleted':
			/* translators: %s: alias name. */
			$message = sprintf( __( 'Your API key (alias "%s") was deleted by the account owner: paste a new key.', 'keyd-stub' ), $name );
			$code    = 'REVOKED';
			break;
		case 'alias.expired':
			$message = '' !== $date
				/* translators: 1: alias name, 2: date. */
				? sprintf( __( 'Your API key (alias "%1$s") expired on %2$s: paste a new key.', 'keyd-stub' ), $name, $date )
				/* translators: %s: alias name. */
				: sprintf( __( 'Your API key (alias "%s") has expired: paste a new key.', 'keyd-stub' ), $name );
			$code    = 'EXPIRED';
			break;
		case 'alias.expiring':
			$level   = 'warning';
			$message = '' !== $date
				/* translators: 1: alias name, 2: date. */
				? sprintf( __( 'Your API key (alias "%1$s") expires on %2$s. Ask the account owner for a new key before then.', 'keyd-stub' ), $name, $date )
				/* translators: %s: alias name. */
				: sprintf( __( 'Your API key (alias "%s") expires soon. Ask the account owner for a new key.', 'keyd-stub' ), $name );
			$code    = $status['code'];
			break;
		default:
			// alias.created, credits.low and the rest need nothing here; a
			// real plugin may hook keyd_stub_webhook_event to use them.
			do_action( 'keyd_stub_webhook_event', $type, $data );
			return false;
	}

	$status['event'] = array(
		'type'    => $type,
		'level'   => $level,
		'message' => $message,
		'at'      => time(),
	);
	if ( 'error' === $level ) {
		// The key no longer works: say so until a new key is validated.
		$status['state']   = 'invalid';
		$status['code']    = $code;
		$status['message'] = $message;
	}
	keyd_stub_set_status( $status );

	/**
	 * Fires after a webhook event changed the state of the key in use.
	 *
	 * @param string $type The event type.
	 * @param array  $data The event's data object.
	 */
	do_action( 'keyd_stub_webhook_event', $type, $data );
	return true;
}
