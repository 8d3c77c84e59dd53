// Package storetest gives tests the database they run on: a new SQLite file
// by default, or a new database on a private PostgreSQL server when the
// tests are built with the tag postgres (make test-postgres), so that the
// same tests check both engines.
//
// A package whose tests use DSN calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
package storetest
