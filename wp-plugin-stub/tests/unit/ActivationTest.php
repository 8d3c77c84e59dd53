<?php
/**
 * What the settings page says about a key's site activations and its own
 * spend limit, and how it reads keyd's answer to "Deactivate this site".
 *
 * @package KeydStub
 */

use PHPUnit\Framework\TestCase;

final class ActivationTest extends TestCase {

	private function answer( $status, array $body ) {
		return array(
			'response' => array( 'code' => $status ),
			'body'     => json_encode( $body ),
		);
	}

	public function test_a_full_key_says_how_to_free_a_site() {
		$message = keyd_stub_code_message( 'SITE_LIMIT_REACHED', array( 'message' => 'this key is already active on 3 of its 3 sites' ) );
		$this->assertStringContainsString( 'http://127.0.0.1', $message );
		$this->assertStringContainsString( '3 of its 3 sites', $message );
		$this->assertStringContainsString( 'Deactivate this site', $message );
	}

	public function test_a_spent_key_says_its_limit_and_when_it_resets() {
		$message = keyd_stub_code_message(
			'KEY_SPEND_LIMIT_REACHED',
			array(
				'spend_limit' => array(
					'limit'     => 500,
					'period'    => 'month',
					'spent'     => 500,
					'remaining' => 0,
					'resets_at' => '2026-06-01T00:00:00Z',
				),
			)
		);
		$this->assertStringContainsString( 'used all 500 units it may spend this month', $message );
		$this->assertStringContainsString( 'It resets on 2026-06-01 00:00.', $message );
	}

	public function test_a_valid_keys_details_show_activations_and_allowance() {
		$status                = keyd_stub_get_status();
		$status['type']        = 'alias';
		$status['sites']       = keyd_stub_read_sites( array( 'sites' => array( 'used' => 2, 'limit' => 3 ) ) );
		$status['spend_limit'] = array(
			'limit'     => 1000,
			'period'    => 'total',
			'spent'     => 120,
			'remaining' => 880,
			'resets_at' => null,
		);
		$details               = keyd_stub_status_details( $status );
		$this->assertSame( '2 of 3 sites use this key', $details['Site activations'] );
		$this->assertSame( '880 of 1,000 units left in total.', $details['Spend limit'] );
		$this->assertNull( keyd_stub_read_sites( array( 'valid' => true ) ), 'a key that does not count sites has no activations line' );
	}

	public function test_deactivation_answers_in_plain_words() {
		$done = keyd_stub_read_deactivate( $this->answer( 200, array( 'released' => true, 'sites' => array( 'used' => 1, 'limit' => 3 ) ) ) );
		$this->assertSame( 'success', $done['level'] );
		$this->assertSame( array( 'used' => 1, 'limit' => 3 ), $done['sites'] );
		$this->assertStringContainsString( 'This site was deactivated', $done['message'] );
		$this->assertStringContainsString( '1 of 3', $done['message'] );

		$nothing = keyd_stub_read_deactivate( $this->answer( 200, array( 'released' => false ) ) );
		$this->assertSame( 'success', $nothing['level'] );
		$this->assertNull( $nothing['sites'] );
		$this->assertStringContainsString( 'nothing to deactivate', $nothing['message'] );

		$refused = keyd_stub_read_deactivate( $this->answer( 401, array( 'error' => array( 'code' => 'REVOKED', 'message' => 'this key was reset' ) ) ) );
		$this->assertSame( 'error', $refused['level'] );
		$this->assertStringContainsString( 'not deactivated', $refused['message'] );
		$this->assertStringContainsString( 'reset or deleted', $refused['message'] );

		$down = keyd_stub_read_deactivate( new WP_Error( 'http_request_failed', 'Connection refused' ) );
		$this->assertSame( 'error', $down['level'] );
		$this->assertStringContainsString( 'Could not reach keyd', $down['message'] );
	}
}
