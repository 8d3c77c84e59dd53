<?php
/**
 * Tests of the Standard Webhooks signature check.
 *
 * @package KeydStub
 */

use PHPUnit\Framework\TestCase;

final class SignatureTest extends TestCase {

	// The test vector published with the Standard Webhooks specification.
	const SPEC_SECRET    = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
	const SPEC_ID        = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
	const SPEC_TIMESTAMP = '1614265330';
	const SPEC_BODY      = '{"test": 2432232314}';
	const SPEC_SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

	private function verify_spec( $secret, $body, $signature, $now = 1614265330, $tolerance = KEYD_STUB_WEBHOOK_TOLERANCE ) {
		return keyd_stub_webhook_verify( $secret, self::SPEC_ID, self::SPEC_TIMESTAMP, $body, $signature, $now, $tolerance );
	}

	public function test_sign_reproduces_the_spec_vector() {
		$this->assertSame( self::SPEC_SIGNATURE, keyd_stub_webhook_sign( self::SPEC_SECRET, self::SPEC_ID, self::SPEC_TIMESTAMP, self::SPEC_BODY ) );
	}

	public function test_spec_vector_verifies() {
		$this->assertSame( KEYD_STUB_SIG_VALID, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, self::SPEC_SIGNATURE ) );
	}

	public function test_secret_without_prefix_is_accepted() {
		$this->assertSame( KEYD_STUB_SIG_VALID, $this->verify_spec( 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', self::SPEC_BODY, self::SPEC_SIGNATURE ) );
	}

	public function test_tampered_body_is_refused() {
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, $this->verify_spec( self::SPEC_SECRET, '{"test": 2432232315}', self::SPEC_SIGNATURE ) );
		// Whitespace matters: the raw bytes are signed, not the decoded JSON.
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, $this->verify_spec( self::SPEC_SECRET, '{"test":2432232314}', self::SPEC_SIGNATURE ) );
	}

	public function test_tampered_id_or_timestamp_is_refused() {
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, keyd_stub_webhook_verify( self::SPEC_SECRET, 'msg_other', self::SPEC_TIMESTAMP, self::SPEC_BODY, self::SPEC_SIGNATURE, 1614265330 ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, keyd_stub_webhook_verify( self::SPEC_SECRET, self::SPEC_ID, '1614265331', self::SPEC_BODY, self::SPEC_SIGNATURE, 1614265330 ) );
	}

	public function test_wrong_secret_is_refused() {
		$other = 'whsec_' . base64_encode( str_repeat( 'k', 24 ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, $this->verify_spec( $other, self::SPEC_BODY, self::SPEC_SIGNATURE ) );
	}

	public function test_unusable_secret_is_reported() {
		$this->assertSame( KEYD_STUB_SIG_BAD_SECRET, $this->verify_spec( 'whsec_', self::SPEC_BODY, self::SPEC_SIGNATURE ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_SECRET, $this->verify_spec( 'whsec_not base64!', self::SPEC_BODY, self::SPEC_SIGNATURE ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_SECRET, $this->verify_spec( '', self::SPEC_BODY, self::SPEC_SIGNATURE ) );
	}

	public function test_multiple_signatures_any_match_wins() {
		$wrong = 'v1,' . base64_encode( str_repeat( "\0", 32 ) );
		$this->assertSame( KEYD_STUB_SIG_VALID, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, $wrong . ' ' . self::SPEC_SIGNATURE ) );
		$this->assertSame( KEYD_STUB_SIG_VALID, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, self::SPEC_SIGNATURE . ' ' . $wrong ) );
		// Entries of another version are ignored, not a reason to fail.
		$this->assertSame( KEYD_STUB_SIG_VALID, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, 'v1a,c29tZXRoaW5n ' . self::SPEC_SIGNATURE ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, $wrong . ' ' . $wrong ) );
	}

	public function test_signature_of_another_version_is_not_accepted() {
		$v2 = 'v2,' . substr( self::SPEC_SIGNATURE, 3 );
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, $v2 ) );
	}

	public function test_missing_headers_are_refused() {
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, '' ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_SIGNATURE, keyd_stub_webhook_verify( self::SPEC_SECRET, '', self::SPEC_TIMESTAMP, self::SPEC_BODY, self::SPEC_SIGNATURE, 1614265330 ) );
	}

	public function test_stale_and_future_timestamps_are_refused() {
		$ts = (int) self::SPEC_TIMESTAMP;
		$this->assertSame( KEYD_STUB_SIG_VALID, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, self::SPEC_SIGNATURE, $ts + 300 ) );
		$this->assertSame( KEYD_STUB_SIG_VALID, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, self::SPEC_SIGNATURE, $ts - 300 ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_TIMESTAMP, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, self::SPEC_SIGNATURE, $ts + 301 ) );
		$this->assertSame( KEYD_STUB_SIG_BAD_TIMESTAMP, $this->verify_spec( self::SPEC_SECRET, self::SPEC_BODY, self::SPEC_SIGNATURE, $ts - 301 ) );
		// With the real clock, a message from 2021 is far too old.
		$this->assertSame( KEYD_STUB_SIG_BAD_TIMESTAMP, keyd_stub_webhook_verify( self::SPEC_SECRET, self::SPEC_ID, self::SPEC_TIMESTAMP, self::SPEC_BODY, self::SPEC_SIGNATURE ) );
	}

	public function test_non_numeric_timestamp_is_refused() {
		$sig = keyd_stub_webhook_sign( self::SPEC_SECRET, self::SPEC_ID, 'soon', self::SPEC_BODY );
		$this->assertSame( KEYD_STUB_SIG_BAD_TIMESTAMP, keyd_stub_webhook_verify( self::SPEC_SECRET, self::SPEC_ID, 'soon', self::SPEC_BODY, $sig, 1614265330 ) );
	}

	public function test_fresh_message_signed_now_verifies_with_the_real_clock() {
		$secret = 'whsec_' . base64_encode( random_bytes( 24 ) );
		$ts     = (string) time();
		$sig    = keyd_stub_webhook_sign( $secret, 'msg_1', $ts, '{}' );
		$this->assertSame( KEYD_STUB_SIG_VALID, keyd_stub_webhook_verify( $secret, 'msg_1', $ts, '{}', $sig ) );
	}

	/**
	 * A message signed by keyd's own signing code. keyd's Go tests write and
	 * check the same fixture, so both sides agree on the scheme. Its timestamp
	 * is old, so "now" is the fixture's own time.
	 */
	public function test_message_signed_by_keyd_verifies() {
		$path = dirname( __DIR__ ) . '/fixtures/keyd-signed.json';
		$this->assertFileExists( $path );
		$fixture = json_decode( (string) file_get_contents( $path ), true );
		$this->assertIsArray( $fixture, 'keyd-signed.json is not JSON' );
		foreach ( array( 'secret', 'id', 'timestamp', 'body', 'signature' ) as $field ) {
			$this->assertArrayHasKey( $field, $fixture );
			$this->assertIsString( $fixture[ $field ], "$field must be a string" );
		}
		$this->assertStringStartsWith( 'whsec_', $fixture['secret'] );
		$this->assertMatchesRegularExpression( '/^[0-9]+$/', $fixture['timestamp'] );

		$now = (int) $fixture['timestamp'];
		$this->assertSame(
			KEYD_STUB_SIG_VALID,
			keyd_stub_webhook_verify( $fixture['secret'], $fixture['id'], $fixture['timestamp'], $fixture['body'], $fixture['signature'], $now )
		);
		// And the same message with one byte changed is refused.
		$this->assertSame(
			KEYD_STUB_SIG_BAD_SIGNATURE,
			keyd_stub_webhook_verify( $fixture['secret'], $fixture['id'], $fixture['timestamp'], $fixture['body'] . ' ', $fixture['signature'], $now )
		);
	}
}
