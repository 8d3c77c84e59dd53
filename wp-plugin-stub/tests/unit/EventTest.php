<?php
/**
 * Tests of how webhook events are matched to the stored key and acted on.
 *
 * @package KeydStub
 */

use PHPUnit\Framework\TestCase;

final class EventTest extends TestCase {

	const KEY = 'AAAAbbbbCCCCdddd9Zx8';

	protected function setUp(): void {
		$GLOBALS['keyd_stub_test_options'] = array();
		$GLOBALS['keyd_stub_test_actions'] = array();
		update_option( KEYD_STUB_OPTION_SETTINGS, array( 'api_key' => self::KEY ) );
	}

	private function store_valid( $key_id, $type = 'primary', $name = '' ) {
		keyd_stub_set_status(
			array(
				'state'  => 'valid',
				'code'   => 'VALID',
				'key_id' => $key_id,
				'hint'   => substr( self::KEY, -4 ),
				'type'   => $type,
				'name'   => $name,
			)
		);
	}

	public function test_reset_of_the_stored_key_marks_it_invalid() {
		$this->store_valid( 'key_old' );
		$acted = keyd_stub_apply_event(
			'key.reset',
			array(
				'key_id'   => 'key_new',
				'hint'     => 'nEw1',
				'previous' => array( 'id' => 'key_old', 'hint' => '9Zx8', 'valid_until' => '2025-01-01T00:00:00Z' ),
			)
		);
		$this->assertTrue( $acted );
		$status = keyd_stub_get_status();
		$this->assertSame( 'invalid', $status['state'] );
		$this->assertFalse( keyd_stub_is_key_valid() );
		$this->assertSame( 'Your API key was reset: paste the new one.', $status['event']['message'] );
	}

	public function test_reset_with_a_grace_period_says_until_when() {
		$this->store_valid( 'key_old' );
		keyd_stub_apply_event( 'key.reset', array( 'previous' => array( 'id' => 'key_old', 'valid_until' => '2099-01-02T03:04:00Z' ) ) );
		$this->assertSame( 'Your API key was reset: paste the new one. The old key stops working on 2099-01-02 03:04.', keyd_stub_get_status()['event']['message'] );
	}

	public function test_reset_does_not_flag_a_site_that_already_has_the_new_key() {
		// A late retry of the reset event arrives after the owner pasted the
		// new key: key_id names the stored key, previous names the old one.
		$this->store_valid( 'key_new' );
		$acted = keyd_stub_apply_event(
			'key.reset',
			array(
				'key_id'   => 'key_new',
				'previous' => array( 'id' => 'key_old', 'valid_until' => '2025-01-01T00:00:00Z' ),
			)
		);
		$this->assertFalse( $acted );
		$this->assertTrue( keyd_stub_is_key_valid() );
	}

	public function test_reset_of_another_accounts_key_is_ignored() {
		$this->store_valid( 'key_mine' );
		$this->assertFalse( keyd_stub_apply_event( 'key.reset', array( 'previous' => array( 'id' => 'key_other', 'hint' => '9Zx8' ) ) ) );
		$this->assertTrue( keyd_stub_is_key_valid() );
	}

	public function test_reset_matched_by_hint_when_no_id_was_stored() {
		// Validation never succeeded, so no key id is known: the hint decides.
		$this->assertTrue( keyd_stub_apply_event( 'key.reset', array( 'previous' => array( 'id' => 'key_x', 'hint' => '9Zx8' ) ) ) );
		$this->assertSame( 'invalid', keyd_stub_get_status()['state'] );
	}

	public function test_reset_without_previous_falls_back_to_key_id() {
		$this->store_valid( 'key_old' );
		$this->assertTrue( keyd_stub_apply_event( 'key.reset', array( 'key' => array( 'id' => 'key_old' ) ) ) );
		$this->assertSame( 'invalid', keyd_stub_get_status()['state'] );
	}

	public function test_revoked_by_key_id() {
		$this->store_valid( 'key_old' );
		$this->assertTrue( keyd_stub_apply_event( 'key.revoked', array( 'key_id' => 'key_old', 'hint' => '9Zx8' ) ) );
		$this->assertSame( 'REVOKED', keyd_stub_get_status()['code'] );
	}

	/**
	 * @dataProvider alias_payloads
	 */
	public function test_alias_deactivated_matches_wherever_the_id_is( array $data ) {
		$this->store_valid( 'key_alias1', 'alias', 'client site' );
		$this->assertTrue( keyd_stub_apply_event( 'alias.deactivated', $data ) );
		$status = keyd_stub_get_status();
		$this->assertSame( 'invalid', $status['state'] );
		$this->assertSame( 'INACTIVE', $status['code'] );
		$this->assertStringContainsString( 'client site', $status['event']['message'] );
		$this->assertStringContainsString( 'deactivated', $status['event']['message'] );
	}

	public function alias_payloads() {
		return array(
			'key_id'   => array( array( 'key_id' => 'key_alias1', 'hint' => '9Zx8', 'name' => 'client site' ) ),
			'alias.id' => array( array( 'alias' => array( 'id' => 'key_alias1', 'name' => 'client site' ) ) ),
			'key.id'   => array( array( 'key' => array( 'id' => 'key_alias1', 'hint' => '9Zx8' ) ) ),
			'hint'     => array( array( 'hint' => '9Zx8' ) ),
		);
	}

	public function test_alias_deleted_and_expired() {
		$this->store_valid( 'key_alias1', 'alias', 'client site' );
		$this->assertTrue( keyd_stub_apply_event( 'alias.expired', array( 'key_id' => 'key_alias1', 'expires_at' => '2025-03-01T12:00:00Z' ) ) );
		$status = keyd_stub_get_status();
		$this->assertSame( 'EXPIRED', $status['code'] );
		$this->assertStringContainsString( '2025-03-01 12:00', $status['event']['message'] );

		$this->store_valid( 'key_alias1', 'alias', 'client site' );
		$this->assertTrue( keyd_stub_apply_event( 'alias.deleted', array( 'alias' => array( 'id' => 'key_alias1' ) ) ) );
		$this->assertSame( 'REVOKED', keyd_stub_get_status()['code'] );
	}

	public function test_alias_expiring_warns_but_keeps_the_key_valid() {
		$this->store_valid( 'key_alias1', 'alias', 'client site' );
		$this->assertTrue( keyd_stub_apply_event( 'alias.expiring', array( 'key_id' => 'key_alias1', 'expires_at' => '2030-06-01T08:30:00Z' ) ) );
		$status = keyd_stub_get_status();
		$this->assertSame( 'valid', $status['state'] );
		$this->assertSame( 'warning', $status['event']['level'] );
		$this->assertStringContainsString( '2030-06-01 08:30', $status['event']['message'] );
	}

	public function test_event_about_another_alias_is_ignored() {
		$this->store_valid( 'key_alias1', 'alias' );
		$this->assertFalse( keyd_stub_apply_event( 'alias.deactivated', array( 'key_id' => 'key_alias2', 'hint' => '9Zx8' ) ) );
		$this->assertTrue( keyd_stub_is_key_valid() );
	}

	public function test_other_events_change_nothing() {
		$this->store_valid( 'key_old' );
		$this->assertFalse( keyd_stub_apply_event( 'credits.low', array( 'credits' => 3 ) ) );
		$this->assertFalse( keyd_stub_apply_event( 'something.new', array( 'key_id' => 'key_old' ) ) );
		$this->assertTrue( keyd_stub_is_key_valid() );
	}

	public function test_status_of_another_key_is_not_reported() {
		$this->store_valid( 'key_old' );
		update_option( KEYD_STUB_OPTION_SETTINGS, array( 'api_key' => 'ZZZZbbbbCCCCdddd0000' ) );
		$this->assertSame( 'unknown', keyd_stub_get_status()['state'] );
	}

	public function test_webhook_ids_are_remembered() {
		$this->assertFalse( keyd_stub_webhook_seen( 'msg_1' ) );
		keyd_stub_webhook_remember( 'msg_1' );
		$this->assertTrue( keyd_stub_webhook_seen( 'msg_1' ) );
		$this->assertFalse( keyd_stub_webhook_seen( 'msg_2' ) );
	}

	public function test_remembered_ids_stay_bounded() {
		for ( $i = 0; $i < KEYD_STUB_SEEN_MAX + 20; $i++ ) {
			keyd_stub_webhook_remember( 'msg_' . $i );
		}
		$this->assertLessThanOrEqual( KEYD_STUB_SEEN_MAX, count( get_option( KEYD_STUB_OPTION_SEEN ) ) );
		$this->assertTrue( keyd_stub_webhook_seen( 'msg_' . ( KEYD_STUB_SEEN_MAX + 19 ) ) );
	}

	public function test_every_contract_code_has_its_own_sentence() {
		$fallback = keyd_stub_code_message( 'SOMETHING_NEW', array( 'message' => 'keyd explains' ) );
		$this->assertSame( 'The key was not accepted (SOMETHING_NEW): keyd explains', $fallback );
		$seen = array();
		foreach ( array( 'VALID', 'INVALID_REQUEST', 'MALFORMED', 'NOT_FOUND', 'REVOKED', 'EXPIRED', 'INACTIVE', 'ACCOUNT_SUSPENDED', 'SCOPE_DENIED', 'SITE_NOT_ALLOWED', 'RATE_LIMITED' ) as $code ) {
			$message = keyd_stub_code_message( $code );
			$this->assertNotSame( '', $message );
			$this->assertStringNotContainsString( $code, $message );
			$this->assertArrayNotHasKey( $message, $seen, "$code shares its sentence with " . ( $seen[ $message ] ?? '' ) );
			$seen[ $message ] = $code;
		}
		$this->assertSame( 'This key expired on 2025-03-01 12:00. Ask the account owner for a new one.', keyd_stub_code_message( 'EXPIRED', array( 'expires_at' => '2025-03-01T12:00:00Z' ) ) );
		$this->assertStringContainsString( '30 seconds', keyd_stub_code_message( 'RATE_LIMITED', array( 'retry_after' => 30 ) ) );
	}
}
