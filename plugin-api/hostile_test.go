package pluginapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// hostileCase is one bad request and the answers the contract allows it.
type hostileCase struct {
	name string
	req  relRequest
	want []relExpect
}

// hostileLong is a field of 50,000 characters, under the body limit.
var hostileLong = strings.Repeat("a", 50_000)

// hostileObject is a route's good body as an object (validate's with a key),
// with its field names in their order.
func hostileObject(r relRoute, a *relAccount) (map[string]json.RawMessage, []string) {
	body := r.body
	if r.route == "POST /v1/validate" {
		body = `{"key":"` + a.alias + `",` + strings.TrimPrefix(body, "{")
	}
	obj := map[string]json.RawMessage{}
	if body != "" {
		if err := json.Unmarshal([]byte(body), &obj); err != nil {
			panic(fmt.Sprintf("%s: bad table body: %v", r.route, err))
		}
	}
	names := make([]string, 0, len(obj))
	for n := range obj {
		names = append(names, n)
	}
	sort.Strings(names)
	return obj, names
}

// hostileEncode writes an object with fields in the given order; values are
// raw bytes, so they may be anything.
func hostileEncode(obj map[string]json.RawMessage, names []string, override map[string]string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		v := string(obj[n])
		if o, ok := override[n]; ok {
			v = o
		}
		fmt.Fprintf(&b, "%q:%s", n, v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// hostileValues are bad values for a field, by the kind of its good value.
func hostileValues(good json.RawMessage) map[string]string {
	switch good[0] {
	case '"':
		return map[string]string{
			"invalid UTF-8": "\"\xff\xfe\xfd\"", "a NUL byte": `"a\u0000b"`, "a raw NUL byte": "\"a\x00b\"",
			"50,000 characters": `"` + hostileLong + `"`, "a number": `12`, "an object": `{}`, "an array": `["x"]`,
			"a control character": `"a\u001bb"`,
		}
	case '[':
		return map[string]string{
			"an element of 50,000 characters": `["` + hostileLong + `"]`, "an invalid UTF-8 element": "[\"\xff\"]",
			"a NUL element": `["a\u0000"]`, "a number element": `[1]`, "a string": `"x"`, "an object": `{}`,
			"a nested array": `[["x"]]`, "10,000 elements": "[" + strings.TrimSuffix(strings.Repeat(`"x",`, 10_000), ",") + "]",
		}
	case 't', 'f':
		return map[string]string{"a string": `"yes"`, "a number": `1`, "an array": `[true]`}
	}
	return map[string]string{ // numbers
		"a number too large for int64": `9223372036854775808`, "a number too small for int64": `-9223372036854775809`,
		"the largest int64": `9223372036854775807`, "1e400": `1e400`, "a fraction": `1.5`, "a string": `"1"`,
		"an array": `[1]`, "an object": `{}`, "the smallest int64": `-9223372036854775808`,
	}
}

// hostileCases builds every bad request for one route of the fixture.
func hostileCases(r relRoute, a, b *relAccount) []hostileCase {
	method := strings.SplitN(r.route, " ", 2)[0]
	validate := r.route == "POST /v1/validate"
	invalid := []relExpect{{http.StatusBadRequest, codeInvalidRequest}}
	tooLarge := []relExpect{{http.StatusRequestEntityTooLarge, codeInvalidRequest}}
	unsupported := []relExpect{{http.StatusUnsupportedMediaType, codeInvalidRequest}}
	if validate { // validate's contract has no 415
		unsupported = invalid
	}
	var auth []string
	switch r.who {
	case relOwner:
		auth = []string{"X-API-Key", a.primary}
	case relAdmin:
		auth = []string{"Authorization", "Bearer " + relToken}
	case relPlugin:
		if !validate {
			auth = []string{"X-API-Key", a.alias}
		}
	}
	target := r.target(a)
	obj, names := hostileObject(r, a)
	good := hostileEncode(obj, names, nil)
	if r.body == "" {
		good = nil
	}
	var cases []hostileCase
	add := func(name string, req relRequest, want []relExpect) {
		req.method = method
		if req.target == "" {
			req.target = target
		}
		if req.headers == nil {
			req.headers = auth
		}
		cases = append(cases, hostileCase{name, req, want})
	}
	jsonBody := func(name string, body []byte, want []relExpect) {
		add(name, relRequest{contentType: "application/json", body: body}, want)
	}

	// Every route: a body over 64 KiB is refused before anything is read.
	big := []byte(`{"x":"` + strings.Repeat("a", 70_000) + `"}`)
	add("a body over 64 KiB", relRequest{contentType: "application/json", body: big}, tooLarge)

	if r.readBody {
		add("a body over 64 KiB of unknown length", relRequest{contentType: "application/json", body: big, chunked: true}, tooLarge)
		add("a form over 64 KiB of unknown length", relRequest{contentType: "application/x-www-form-urlencoded",
			body: []byte("key=" + strings.Repeat("a", 70_000)), chunked: true}, append(tooLarge, unsupported...))

		// Each field in turn gets every bad value of its kind. A bad key
		// may be MALFORMED instead.
		for _, n := range names {
			want := invalid
			if validate && n == "key" {
				want = []relExpect{{http.StatusBadRequest, codeInvalidRequest}, {http.StatusUnauthorized, codeMalformed}}
			}
			for what, v := range hostileValues(obj[n]) {
				if n == "grace_period" && what == "a number" {
					continue // a number of seconds is a grace period too
				}
				jsonBody(n+" as "+what, hostileEncode(obj, names, map[string]string{n: v}), want)
			}
			dup := append(bytes.Clone(bytes.TrimSuffix(good, []byte("}"))), []byte(fmt.Sprintf(",%q:%s}", n, obj[n]))...)
			jsonBody(n+" twice", dup, invalid)
		}
		unknown := []byte(`{"unknown_field":1}`)
		if len(names) > 0 {
			unknown = append(bytes.Clone(bytes.TrimSuffix(good, []byte("}"))), []byte(`,"unknown_field":1}`)...)
		}
		jsonBody("an unknown field", unknown, invalid)
		jsonBody("an unknown field twice", []byte(`{"x":1,"x":1}`), invalid)
		jsonBody("invalid UTF-8 in a name", []byte("{\"\xff\":1}"), invalid)
		jsonBody("a NUL byte", []byte("\x00"), invalid)
		jsonBody("a NUL byte after the object", append(bytes.Clone(good), 0), invalid)
		jsonBody("a byte order mark", append([]byte("\xef\xbb\xbf"), good...), invalid)
		jsonBody("arrays nested 30,000 deep", []byte(strings.Repeat("[", 30_000)+strings.Repeat("]", 30_000)), invalid)
		jsonBody("objects nested 5,000 deep", []byte(strings.Repeat(`{"a":`, 5_000)+"1"+strings.Repeat("}", 5_000)), invalid)
		jsonBody("a field nested 20 deep", []byte(`{"x":`+strings.Repeat("[", 20)+strings.Repeat("]", 20)+`}`), invalid)
		jsonBody("an empty array", []byte(`[]`), invalid)
		jsonBody("the body in an array", append(append([]byte("["), good...), ']'), invalid)
		jsonBody("null", []byte(`null`), invalid)
		jsonBody("true", []byte(`true`), invalid)
		jsonBody("a number", []byte(`12`), invalid)
		jsonBody("a string", []byte(`"{}"`), invalid)
		jsonBody("two objects", append(bytes.Clone(good), good...), invalid)
		jsonBody("a cut object", []byte(`{"x":`), invalid)
		jsonBody("a lone brace", []byte(`}`), invalid)
		if !r.emptyOK {
			jsonBody("an empty body", []byte{}, invalid)
			jsonBody("a body of spaces", []byte(" \n\t "), invalid)
		}
		for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "}{ not a media type"} {
			add("the good body as "+ct, relRequest{contentType: ct, body: good}, unsupported)
		}
		if !validate {
			add("the good body as a form", relRequest{contentType: "application/x-www-form-urlencoded", body: good}, unsupported)
		} else {
			add("a form with a bad escape", relRequest{contentType: "application/x-www-form-urlencoded", body: []byte("key=%zz")}, invalid)
			add("a form with the key twice", relRequest{contentType: "application/x-www-form-urlencoded",
				body: []byte("key=" + a.alias + "&key=" + a.alias)}, invalid)
			add("a form with a NUL in site", relRequest{contentType: "application/x-www-form-urlencoded",
				body: []byte("key=" + a.alias + "&site=%00")}, invalid)
			add("a form with invalid UTF-8 in plugin", relRequest{contentType: "application/x-www-form-urlencoded",
				body: []byte("key=" + a.alias + "&plugin=%FF%FE")}, invalid)
			add("a form with 50,000 characters in site", relRequest{contentType: "application/x-www-form-urlencoded",
				body: []byte("key=" + a.alias + "&site=" + hostileLong)}, invalid)
			add("the good body as a form", relRequest{contentType: "application/x-www-form-urlencoded", body: good}, invalid)
		}
	}

	// Bad ids in the path, with a good body: nothing of this account's.
	if strings.Contains(r.path, "{") {
		theirs := strings.NewReplacer("{account}", b.id, "{key}", b.primaryID, "{revoked}", b.revokedID, "{alias}", b.aliasID, "{inactive}", b.inactiveID,
			"{sub}", b.subID, "{webhook}", b.webhookID, "{message}", b.messageID).Replace(r.path)
		id := r.target(a)
		param := strings.TrimPrefix(id, r.path[:strings.Index(r.path, "{")])
		param, _, _ = strings.Cut(param, "/")
		notFound := []relExpect{{http.StatusNotFound, codeNotFound}}
		for what, bad := range map[string]string{
			"a NUL byte": "%00", "invalid UTF-8": "%FF%FE", "50,000 characters": hostileLong, "a dot-dot": "..%2F..",
			"a quote": "%22%27", "a SQL wildcard": "%25", "an id with a NUL byte": param + "%00",
		} {
			add("an id of "+what, relRequest{target: strings.Replace(id, param, bad, 1), contentType: "application/json", body: good}, notFound)
		}
		if r.who == relOwner {
			add("another account's id", relRequest{target: theirs, contentType: "application/json", body: good}, notFound)
		}
	}
	if r.route == "PUT /admin/v1/plans/:name" {
		for what, bad := range map[string]string{"a NUL byte": "%00", "invalid UTF-8": "%FF", "50,000 characters": hostileLong, "upper case": "Gold"} {
			add("a plan name of "+what, relRequest{target: "/admin/v1/plans/" + bad, contentType: "application/json", body: good}, invalid)
		}
	}

	// Bad query parameters.
	for _, q := range r.query {
		for what, bad := range map[string]string{
			"a NUL byte": "%00", "invalid UTF-8": "%FF%FE", "50,000 characters": hostileLong, "a huge number": "99999999999999999999",
			"a negative number": "-1", "a date that does not exist": "2026-02-30", "an exponent": "1e3", "a list": "a&" + q + "=b",
		} {
			want := invalid
			if q == "key_id" || q == "before" || q == "after" || q == "search" {
				// Free-form ids and text: an unknown one finds nothing (or is refused).
				want = []relExpect{{http.StatusOK, ""}, {http.StatusBadRequest, codeInvalidRequest}, {http.StatusNotFound, codeNotFound}}
			}
			add(q+" of "+what, relRequest{target: target + "?" + q + "=" + bad}, want)
		}
	}

	// Bad credentials.
	switch r.who {
	case relOwner, relPlugin:
		want := []relExpect{{http.StatusUnauthorized, codeUnauthorized}}
		if r.who == relPlugin { // a key too long is a field too long
			want = []relExpect{{http.StatusUnauthorized, codeMalformed}, {http.StatusBadRequest, codeInvalidRequest}}
		}
		body := good
		if validate {
			body = []byte(`{"site":"https://client.example/"}`)
		}
		for what, bad := range map[string]string{"a NUL byte": a.primary[:10] + "\x00" + a.primary[11:], "invalid UTF-8": "\xff" + a.primary[1:],
			"50,000 characters": hostileLong, "the key twice": a.primary + a.primary, "a space": " " + a.primary[1:]} {
			add("a key of "+what, relRequest{contentType: "application/json", body: body, headers: []string{"X-API-Key", bad}}, want)
		}
	case relAdmin:
		for what, bad := range map[string]string{"50,000 characters": hostileLong, "a NUL byte": relToken + "\x00", "the token twice": relToken + relToken,
			"a prefix of the token": relToken[:len(relToken)-1], "invalid UTF-8": relToken + "\xff"} {
			add("a token of "+what, relRequest{contentType: "application/json", body: good, headers: []string{"Authorization", "Bearer " + bad}},
				[]relExpect{{http.StatusUnauthorized, codeUnauthorized}})
		}
	}
	return cases
}

// TestHostileInputsOnEveryRoute sends every route of the router, properly
// authenticated, bad input of every kind: invalid UTF-8, NUL bytes, 50,000
// character fields, deep nesting, numbers out of range, duplicated keys,
// wrong types and content types, empty bodies, arrays instead of objects,
// bodies over 64 KiB, bad ids, query parameters and credentials. Each must
// be answered with a 4xx and the contract's code, never a 500 or a panic,
// and must leave the database exactly as it was.
func TestHostileInputsOnEveryRoute(t *testing.T) {
	e := newRelEnv(t, relToken)
	checkRelRouteTable(t, e)
	a := e.relAccountFixture("Acme")
	b := e.relAccountFixture("Other")
	initial := e.snapshot()
	total := 0
	for _, r := range relRouteTable {
		cases := hostileCases(r, a, b)
		before := e.snapshot()
		for _, c := range cases {
			got := e.send(c.req)
			total++
			ok := false
			for _, w := range c.want {
				if got.status == w.status && (w.code == "" || got.code() == w.code) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s with %s: got %s, want one of %v", r.route, c.name, got, c.want)
			}
			if got.status >= 200 && got.status < 300 && len(c.want) == 1 {
				t.Errorf("%s with %s succeeded", r.route, c.name)
			}
		}
		if d := relDiff(before, e.snapshot(), nil); d != "" {
			t.Errorf("bad input to %s changed the database:\n%s", r.route, d)
		}
	}
	if d := relDiff(initial, e.snapshot(), nil); d != "" {
		t.Errorf("bad input changed the database:\n%s", d)
	}
	t.Logf("%d bad requests over %d routes", total, len(relRouteTable))
}
