<?php
/**
 * The ShortPixel Image Optimizer's key check as that plugin speaks it
 * (getRemoteQuota in its QuotaController, version 6.5.1): what it sends and
 * how it reads the answer, written out from its source for keyd's tests. The
 * end-to-end check sends these requests through a real WordPress; the unit
 * tests read keyd's recorded answers with spio_read.
 *
 * @package KeydStub
 */

/**
 * The plugin's getRemoteQuota($key, true): the fields it sends, POST first
 * and, with $get, its GET fallback with the fields in the query string.
 */
function spio_request( $key, $site_pass, $get = false ) {
	$url  = 'https://api.shortpixel.com/v2/api-status.php';
	$body = array(
		'key'         => $key,
		'useragent'   => 'Agent' . urlencode( 'Mozilla/5.0 (X11; Linux x86_64)' ),
		'DomainCheck' => get_site_url(),
		'Info'        => get_bloginfo( 'version' ) . '|' . phpversion(),
		'ImagesCount' => 12,
		'ThumbsCount' => 84,
		'host'        => wp_parse_url( get_site_url(), PHP_URL_HOST ),
		'user'        => 'siteadmin',
		'pass'        => $site_pass,
	);
	$args = array(
		'timeout'   => 15,
		'body'      => $body,
		'sslverify' => true,
	);
	if ( $get ) {
		$args['body'] = null;
		return wp_remote_get( $url . '?' . http_build_query( $body ), $args );
	}
	return wp_remote_post( $url, $args );
}

/**
 * What the plugin makes of an answer: null for "could not be validated"
 * (a connectivity failure), else an array with APIKeyValid, Message and the
 * remaining credits as it adds them up.
 */
function spio_read( $response ) {
	if ( is_wp_error( $response ) || 200 !== (int) $response['response']['code'] ) {
		return null;
	}
	$data = json_decode( $response['body'] );
	if ( empty( $data ) ) {
		return null;
	}
	if ( 2 != $data->Status->Code ) { // phpcs:ignore Universal.Operators.StrictComparisons -- as the plugin compares
		return array(
			'APIKeyValid' => false,
			'Message'     => $data->Status->Message,
		);
	}
	$made      = (int) max( $data->APICallsMade, 0 );
	$quota     = (int) max( $data->APICallsQuota, 0 );
	$made_once = (int) max( $data->APICallsMadeOneTime, 0 );
	$once      = (int) max( $data->APICallsQuotaOneTime, 0 );
	return array(
		'APIKeyValid'        => true,
		'Unlimited'          => property_exists( $data, 'Unlimited' ) && 'true' == $data->Unlimited, // phpcs:ignore Universal.Operators.StrictComparisons
		'APILastRenewalDate' => $data->DateSubscription,
		'APICallsRemaining'  => max( $quota - $made, 0 ) + max( $once - $made_once, 0 ),
	);
}
