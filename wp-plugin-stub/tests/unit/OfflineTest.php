<?php
/**
 * Tests of what the plugin does with keyd's receipts and rotation notices:
 * working on while keyd cannot be reached, until the receipt runs out, and
 * warning before a replaced key stops working.
 *
 * @package KeydStub
 */

use PHPUnit\Framework\TestCase;

final class OfflineTest extends TestCase {

	const KEY = 'AAAAbbbbCCCCdddd9Zx8';

	/** @var array The receipt fixture keyd's Go tests write. */
	private $f;

	protected function setUp(): void {
		$GLOBALS['keyd_stub_test_options']  = array();
		$GLOBALS['keyd_stub_test_timezone'] = 'UTC';
		$this->f                            = json_decode( (string) file_get_contents( dirname( __DIR__ ) . '/fixtures/keyd-receipt.json' ), true );
		$GLOBALS['keyd_stub_test_home']     = rtrim( $this->f['site'], '/' ) . '/';
		update_option( KEYD_STUB_OPTION_SETTINGS, array( 'api_key' => self::KEY ) );
		update_option( KEYD_STUB_OPTION_RECEIPT_KEYS, $this->f['keys'] );
	}

	protected function tearDown(): void {
		$GLOBALS['keyd_stub_test_home']     = 'http://127.0.0.1';
		$GLOBALS['keyd_stub_test_timezone'] = 'UTC';
	}

	private function store_valid( array $extra = array() ) {
		keyd_stub_set_status(
			array_merge(
				array(
					'state'   => 'valid',
					'code'    => 'VALID',
					'key_id'  => $this->f['key_id'],
					'hint'    => '9Zx8',
					'receipt' => $this->f['receipt'],
				),
				$extra
			)
		);
	}

	public function test_while_keyd_answers_the_receipt_is_not_needed() {
		$this->store_valid( array( 'receipt' => 'garbage' ) );
		$this->assertTrue( keyd_stub_is_key_valid( $this->f['valid_until'] + 1 ) );
		$this->assertSame( '', keyd_stub_offline_message( keyd_stub_get_status() ) );
	}

	public function test_unreachable_keyd_keeps_the_key_until_the_receipt_runs_out() {
		$this->store_valid();
		keyd_stub_note_unreachable();
		$status = keyd_stub_get_status();
		$this->assertGreaterThan( 0, $status['offline_since'] );

		$during = $this->f['issued_at'] + 3600;
		$this->assertTrue( keyd_stub_is_key_valid( $during ) );
		$this->assertSame(
			'keyd could not be reached; your key was last confirmed at 2025-01-01 00:00 and stays accepted until 2025-01-04 00:00.',
			keyd_stub_offline_message( $status, $during )
		);
		$this->assertTrue( keyd_stub_is_key_valid( $this->f['valid_until'] - 1 ) );

		$this->assertFalse( keyd_stub_is_key_valid( $this->f['valid_until'] ) );
		$this->assertSame(
			'keyd could not be reached; your key was last confirmed at 2025-01-01 00:00, and that confirmation ran out at 2025-01-04 00:00. The plugin is off until keyd answers again.',
			keyd_stub_offline_message( $status, $this->f['valid_until'] )
		);
	}

	public function test_dates_are_in_the_sites_timezone() {
		$GLOBALS['keyd_stub_test_timezone'] = 'Europe/Paris';
		$this->store_valid( array( 'offline_since' => 1 ) );
		$this->assertStringContainsString( 'confirmed at 2025-01-01 01:00 and stays accepted until 2025-01-04 01:00', keyd_stub_offline_message( keyd_stub_get_status(), $this->f['issued_at'] ) );
	}

	public function test_a_receipt_that_does_not_verify_gives_no_grace() {
		// One character of the signature changed.
		$tampered        = $this->f['receipt'];
		$at              = strlen( $tampered ) - 10;
		$tampered[ $at ] = 'A' === $tampered[ $at ] ? 'B' : 'A';

		$during = $this->f['issued_at'] + 60;
		$cases  = array(
			'foreign-signed' => array( 'receipt' => $this->f['foreign_receipt'] ),
			'unknown kid'    => array( 'receipt' => $this->f['unknown_kid_receipt'] ),
			'tampered'       => array( 'receipt' => $tampered ),
			'another key'    => array( 'key_id' => 'key_0000000000000000' ),
		);
		foreach ( $cases as $name => $extra ) {
			$this->store_valid( array_merge( array( 'offline_since' => 1 ), $extra ) );
			$this->assertFalse( keyd_stub_is_key_valid( $during ), $name );
			$this->assertStringContainsString( 'could not be verified', keyd_stub_offline_message( keyd_stub_get_status(), $during ), $name );
		}
		// Another site's receipt.
		$GLOBALS['keyd_stub_test_home'] = 'https://other.example/';
		$this->store_valid( array( 'offline_since' => 1 ) );
		$this->assertFalse( keyd_stub_is_key_valid( $during ) );
	}

	public function test_an_invalid_key_stays_invalid_whatever_its_receipt() {
		$this->store_valid( array( 'state' => 'invalid', 'offline_since' => 1 ) );
		$this->assertFalse( keyd_stub_is_key_valid( $this->f['issued_at'] + 60 ) );
		$this->assertSame( '', keyd_stub_note_unreachable() );
	}

	public function test_rotation_warning_names_both_times_in_the_sites_timezone() {
		$GLOBALS['keyd_stub_test_timezone'] = 'America/New_York';
		$this->store_valid( array( 'rotation' => array( 'replaced_at' => '2025-03-01T12:00:00Z', 'grace_ends_at' => '2025-03-02T12:00:00Z' ) ) );
		$this->assertSame(
			'Your API key was replaced by a new one on 2025-03-01 07:00 and stops working on 2025-03-02 07:00. Paste the new key from your account before then.',
			keyd_stub_rotation_message( keyd_stub_get_status() )
		);
	}

	public function test_no_rotation_warning_without_a_rotation_or_for_an_invalid_key() {
		$this->store_valid();
		$this->assertSame( '', keyd_stub_rotation_message( keyd_stub_get_status() ) );
		$this->store_valid( array( 'state' => 'invalid', 'rotation' => array( 'replaced_at' => '2025-03-01T12:00:00Z', 'grace_ends_at' => '2025-03-02T12:00:00Z' ) ) );
		$this->assertSame( '', keyd_stub_rotation_message( keyd_stub_get_status() ) );
	}
}
