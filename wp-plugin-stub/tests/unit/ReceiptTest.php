<?php
/**
 * Tests of the receipt check against receipts keyd signed (the fixture is
 * written and checked by keyd's Go tests).
 *
 * @package KeydStub
 */

use PHPUnit\Framework\TestCase;

final class ReceiptTest extends TestCase {

	/**
	 * @return array The fixture: keys, site, key_id, issued_at, valid_until,
	 *               receipt, foreign_receipt, unknown_kid_receipt.
	 */
	private function fixture() {
		$path = dirname( __DIR__ ) . '/fixtures/keyd-receipt.json';
		$this->assertFileExists( $path );
		$fixture = json_decode( (string) file_get_contents( $path ), true );
		$this->assertIsArray( $fixture, 'keyd-receipt.json is not JSON' );
		return $fixture;
	}

	private function verify( $token, $now = null, $site = '', $keys = null ) {
		$f = $this->fixture();
		return keyd_stub_receipt_verify( $token, null === $keys ? $f['keys'] : $keys, null === $now ? $f['issued_at'] + 60 : $now, $site );
	}

	public function test_keyds_receipt_verifies_until_it_expires() {
		$f = $this->fixture();
		$r = $this->verify( $f['receipt'], $f['issued_at'], $f['site'] );
		$this->assertSame( KEYD_STUB_RECEIPT_VALID, $r['result'] );
		$this->assertSame( $f['key_id'], $r['claims']['key_id'] );
		$this->assertSame( $f['site'], $r['claims']['site'] );
		$this->assertSame( $f['issued_at'], $r['claims']['iat'] );
		$this->assertSame( $f['valid_until'], $r['claims']['exp'] );
		$this->assertSame( array( '*' ), $r['claims']['scopes'] );
		$this->assertSame( 'pro', $r['claims']['plan'] );
		$this->assertSame( KEYD_STUB_RECEIPT_VALID, $this->verify( $f['receipt'], $f['valid_until'] - 1 )['result'] );
	}

	public function test_an_expired_receipt_is_refused() {
		$f = $this->fixture();
		$r = $this->verify( $f['receipt'], $f['valid_until'] );
		$this->assertSame( KEYD_STUB_RECEIPT_EXPIRED, $r['result'] );
		$this->assertSame( $f['valid_until'], $r['claims']['exp'], 'an expired receipt still says when it ended' );
	}

	public function test_a_receipt_for_another_site_is_refused() {
		$f = $this->fixture();
		$this->assertSame( KEYD_STUB_RECEIPT_OTHER_SITE, $this->verify( $f['receipt'], null, 'https://other.example/' )['result'] );
	}

	public function test_a_tampered_receipt_is_refused() {
		$f                 = $this->fixture();
		list( $h, $p, $s ) = explode( '.', $f['receipt'] );
		// A later expiry, signed by nobody.
		$claims        = json_decode( keyd_stub_base64url_decode( $p ), true );
		$claims['exp'] = $claims['exp'] + 86400 * 365;
		$forged        = rtrim( strtr( base64_encode( json_encode( $claims ) ), '+/', '-_' ), '=' );
		$this->assertSame( KEYD_STUB_RECEIPT_BAD_SIGNATURE, $this->verify( "$h.$forged.$s" )['result'] );
		// One flipped bit of the signature.
		$sig     = keyd_stub_base64url_decode( $s );
		$sig[10] = chr( ord( $sig[10] ) ^ 1 );
		$flipped = rtrim( strtr( base64_encode( $sig ), '+/', '-_' ), '=' );
		$this->assertSame( KEYD_STUB_RECEIPT_BAD_SIGNATURE, $this->verify( "$h.$p.$flipped" )['result'] );
		// Another algorithm in the header.
		$none = rtrim( strtr( base64_encode( '{"alg":"none","kid":"rk_5e1d0c9b8a7f6e5d"}' ), '+/', '-_' ), '=' );
		$this->assertSame( KEYD_STUB_RECEIPT_MALFORMED, $this->verify( "$none.$p.$s" )['result'] );
	}

	public function test_foreign_signed_receipts_are_refused() {
		$f = $this->fixture();
		// Another key under keyd's kid, and a kid keyd does not publish.
		$this->assertSame( KEYD_STUB_RECEIPT_BAD_SIGNATURE, $this->verify( $f['foreign_receipt'] )['result'] );
		$this->assertSame( KEYD_STUB_RECEIPT_UNKNOWN_KEY, $this->verify( $f['unknown_kid_receipt'] )['result'] );
		// keyd's own receipt against a set without its key.
		$this->assertSame( KEYD_STUB_RECEIPT_UNKNOWN_KEY, $this->verify( $f['receipt'], null, '', array( 'keys' => array() ) )['result'] );
	}

	public function test_garbage_is_malformed() {
		foreach ( array( '', 'a.b', 'a.b.c.d', '!!.??.**', 'e30.e30.e30', null, 42 ) as $token ) {
			$this->assertSame( KEYD_STUB_RECEIPT_MALFORMED, $this->verify( $token )['result'], var_export( $token, true ) );
		}
	}
}
