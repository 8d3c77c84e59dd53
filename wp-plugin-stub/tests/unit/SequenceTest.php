<?php
/**
 * Tests that events older than one already applied to the key are ignored.
 *
 * @package KeydStub
 */

use PHPUnit\Framework\TestCase;

final class SequenceTest extends TestCase {

	const KEY    = 'AAAAbbbbCCCCdddd9Zx8';
	const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

	protected function setUp(): void {
		$GLOBALS['keyd_stub_test_options'] = array();
		$GLOBALS['keyd_stub_test_actions'] = array();
		update_option(
			KEYD_STUB_OPTION_SETTINGS,
			array(
				'api_key'        => self::KEY,
				'webhook_secret' => self::SECRET,
			)
		);
		$this->store_valid();
	}

	private function store_valid() {
		keyd_stub_set_status(
			array(
				'state'  => 'valid',
				'code'   => 'VALID',
				'key_id' => 'key_alias1',
				'hint'   => '9Zx8',
				'type'   => 'alias',
				'name'   => 'client site',
			)
		);
	}

	/** Delivers a signed message to the receiver as keyd would. */
	private function deliver( $msg_id, $type, $sequence ) {
		$body    = json_encode(
			array(
				'type'      => $type,
				'timestamp' => '2026-05-01T10:00:00.123Z',
				'sequence'  => $sequence,
				'data'      => array( 'key_id' => 'key_alias1', 'hint' => '9Zx8', 'name' => 'client site' ),
			)
		);
		$now     = (string) time();
		$request = new WP_REST_Request(
			array(
				'webhook-id'        => $msg_id,
				'webhook-timestamp' => $now,
				'webhook-signature' => keyd_stub_webhook_sign( self::SECRET, $msg_id, $now, $body ),
			),
			$body
		);
		return keyd_stub_handle_webhook( $request );
	}

	public function test_an_older_event_arriving_late_is_ignored() {
		// keyd sent deactivated (5) and reactivated (6); the deactivation
		// failed once and its retry arrives after the reactivation.
		$this->assertFalse( keyd_stub_apply_event( 'alias.reactivated', array( 'key_id' => 'key_alias1' ), 6 ) );
		$this->assertTrue( keyd_stub_is_key_valid() );
		$this->assertFalse( keyd_stub_apply_event( 'alias.deactivated', array( 'key_id' => 'key_alias1', 'name' => 'client site' ), 5 ) );
		$this->assertTrue( keyd_stub_is_key_valid(), 'a stale deactivation marked the key invalid' );
		// The same event again is not newer either.
		$this->assertFalse( keyd_stub_apply_event( 'alias.deactivated', array( 'key_id' => 'key_alias1' ), 6 ) );
		$this->assertTrue( keyd_stub_is_key_valid() );

		// A later event is applied.
		$this->assertTrue( keyd_stub_apply_event( 'alias.deleted', array( 'key_id' => 'key_alias1' ), 7 ) );
		$this->assertSame( 'REVOKED', keyd_stub_get_status()['code'] );
	}

	public function test_the_receiver_answers_200_to_a_stale_event_and_changes_nothing() {
		$response = $this->deliver( 'msg_2', 'alias.reactivated', 12 );
		$this->assertInstanceOf( WP_REST_Response::class, $response );
		$this->assertSame( 200, $response->get_status() );

		$response = $this->deliver( 'msg_1', 'alias.deactivated', 11 );
		$this->assertInstanceOf( WP_REST_Response::class, $response );
		$this->assertSame( 200, $response->get_status() );
		$this->assertFalse( $response->data['acted'] );
		$this->assertTrue( keyd_stub_is_key_valid(), 'a stale deactivation marked the key invalid' );

		$response = $this->deliver( 'msg_3', 'alias.deleted', 13 );
		$this->assertSame( 200, $response->get_status() );
		$this->assertTrue( $response->data['acted'] );
		$this->assertFalse( keyd_stub_is_key_valid() );
	}

	public function test_sequences_are_kept_per_key() {
		$this->assertFalse( keyd_stub_apply_event( 'alias.reactivated', array( 'key_id' => 'key_alias1' ), 40 ) );
		// Another key, pasted later, starts its own count.
		update_option( KEYD_STUB_OPTION_SETTINGS, array( 'api_key' => 'ZZZZbbbbCCCCdddd0000' ) );
		keyd_stub_set_status( array( 'state' => 'valid', 'code' => 'VALID', 'key_id' => 'key_other', 'hint' => '0000' ) );
		$this->assertTrue( keyd_stub_apply_event( 'key.revoked', array( 'key_id' => 'key_other' ), 3 ) );
		$this->assertFalse( keyd_stub_is_key_valid() );
	}

	public function test_an_event_without_sequence_is_applied() {
		$this->assertFalse( keyd_stub_apply_event( 'alias.reactivated', array( 'key_id' => 'key_alias1' ), 9 ) );
		$this->assertTrue( keyd_stub_apply_event( 'alias.deactivated', array( 'key_id' => 'key_alias1' ) ) );
		$this->assertFalse( keyd_stub_is_key_valid() );
	}

	public function test_remembered_sequences_stay_bounded() {
		for ( $i = 0; $i < KEYD_STUB_SEQUENCE_MAX + 10; $i++ ) {
			keyd_stub_sequence_advance( sprintf( 'KEY%017d', $i ), 1 );
		}
		$this->assertCount( KEYD_STUB_SEQUENCE_MAX, get_option( KEYD_STUB_OPTION_SEQUENCE ) );
		$this->assertFalse( keyd_stub_sequence_advance( sprintf( 'KEY%017d', KEYD_STUB_SEQUENCE_MAX + 9 ), 1 ) );
		$this->assertTrue( keyd_stub_sequence_advance( sprintf( 'KEY%017d', 0 ), 1 ), 'the oldest key is forgotten' );
	}
}
