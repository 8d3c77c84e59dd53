<?php
/**
 * keyd's answers to the ShortPixel-style key check, read the way the
 * ShortPixel Image Optimizer reads them, and the must-use plugin that sends
 * that check to keyd.
 *
 * @package KeydStub
 */

use PHPUnit\Framework\TestCase;

final class SpioTest extends TestCase {

	/**
	 * keyd's Go tests write and check this fixture from keyd's real answers.
	 *
	 * @return array<string, string>
	 */
	private function fixture() {
		$path = dirname( __DIR__ ) . '/fixtures/spio-status.json';
		$this->assertFileExists( $path );
		$fixture = json_decode( (string) file_get_contents( $path ), true );
		$this->assertIsArray( $fixture, 'spio-status.json is not JSON' );
		return $fixture;
	}

	private function answer( $body ) {
		return array(
			'response' => array( 'code' => 200 ),
			'body'     => $body,
		);
	}

	public function test_a_valid_key_is_read_as_valid_with_the_pool_as_credits() {
		// Warnings (an undefined property, say) fail the test: see phpunit.xml.
		$quota = spio_read( $this->answer( $this->fixture()['valid'] ) );
		$this->assertNotNull( $quota );
		$this->assertTrue( $quota['APIKeyValid'] );
		$this->assertSame( 1500, $quota['APICallsRemaining'] );
		$this->assertFalse( $quota['Unlimited'] );
		$this->assertNull( $quota['APILastRenewalDate'] );
	}

	public function test_a_deactivated_alias_is_refused_with_keyds_message() {
		$quota = spio_read( $this->answer( $this->fixture()['inactive'] ) );
		$this->assertNotNull( $quota );
		$this->assertFalse( $quota['APIKeyValid'] );
		$this->assertSame( 'this key was deactivated by the account owner', $quota['Message'] );
	}

	public function test_only_the_key_check_goes_to_keyd() {
		$this->assertSame( 'http://127.0.0.1:8080/v2/api-status.php', keyd_spio_target( 'https://api.shortpixel.com/v2/api-status.php' ) );
		$this->assertSame( 'http://127.0.0.1:8080/v2/api-status.php', keyd_spio_target( 'http://API.ShortPixel.com/v2/api-status.php' ) );
		$this->assertSame( 'http://127.0.0.1:8080/v2/api-status.php?key=abc&host=a.example', keyd_spio_target( 'https://api.shortpixel.com/v2/api-status.php?key=abc&host=a.example' ) );
		$this->assertNull( keyd_spio_target( 'https://api.shortpixel.com/v2/reducer.php' ) );
		$this->assertNull( keyd_spio_target( 'https://api.example.com/v2/api-status.php' ) );
		$this->assertNull( keyd_spio_target( 'not a url' ) );
	}
}
