<?php
/**
 * Router for `php -S` serving Debian's WordPress: /usr/share/wordpress is the
 * document root, but wp-content lives in /var/lib/wordpress, and every path
 * that is not a file goes to index.php (pretty permalinks, /wp-json/).
 */

$path = parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH );
$path = is_string( $path ) ? rawurldecode( $path ) : '/';

if ( false !== strpos( $path, '..' ) ) {
	http_response_code( 400 );
	return true;
}

if ( 0 === strpos( $path, '/wp-content/' ) ) {
	$file = '/var/lib/wordpress' . $path;
	if ( is_file( $file ) ) {
		if ( preg_match( '/\.php$/', $file ) ) {
			http_response_code( 403 );
			return true;
		}
		$types = array(
			'css'  => 'text/css',
			'js'   => 'application/javascript',
			'png'  => 'image/png',
			'jpg'  => 'image/jpeg',
			'gif'  => 'image/gif',
			'svg'  => 'image/svg+xml',
			'woff' => 'font/woff',
			'woff2' => 'font/woff2',
		);
		$ext = strtolower( pathinfo( $file, PATHINFO_EXTENSION ) );
		header( 'Content-Type: ' . ( isset( $types[ $ext ] ) ? $types[ $ext ] : 'application/octet-stream' ) );
		readfile( $file );
		return true;
	}
	http_response_code( 404 );
	return true;
}

$file = $_SERVER['DOCUMENT_ROOT'] . $path;
if ( '/' !== $path && is_file( $file ) ) {
	// Static files and the PHP entry points (wp-login.php, wp-admin/*.php).
	return false;
}
if ( '/' !== $path && is_dir( $file ) && is_file( rtrim( $file, '/' ) . '/index.php' ) ) {
	// /wp-admin/ and the like: the built-in server finds the index.php.
	return false;
}

$_SERVER['SCRIPT_NAME'] = '/index.php';
require $_SERVER['DOCUMENT_ROOT'] . '/index.php';
return true;
