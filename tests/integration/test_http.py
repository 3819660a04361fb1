"""Basic HTTP behaviour: /health, HEAD, request ids, 404/405, JSON errors."""

import json
import os
import re

from harness import REPO_ROOT, UUID4_RE, HapaxTestCase, build_request


class HealthTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server()

    def test_get_health(self):
        r = self.srv.get("/health")
        self.assertEqual(r.status, 200, r)
        self.assertCommonHeaders(r)
        ctype = (r.header("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, "application/json", r)
        self.assertEqual(r.json().get("status"), "ok", r)
        self.assertEqual(int(r.header("Content-Length")), len(r.body), r)

    def test_head_health_same_headers_no_body(self):
        c = self.conn(self.srv)
        get = c.request("GET", "/health")
        self.assertEqual(get.status, 200, get)
        # HEAD then GET on the same connection: if HEAD carried body bytes,
        # the next response would not start where the HEAD head ends.
        c.send(build_request("HEAD", "/health") + build_request("GET", "/health"))
        head = c.read_response("HEAD")
        self.assertEqual(head.status, 200, head)
        self.assertCommonHeaders(head)
        self.assertEqual(head.header("Content-Length"), str(len(get.body)),
                         "HEAD Content-Length must be the GET body length: %r" % head)
        self.assertEqual(head.header("Content-Type"), get.header("Content-Type"))
        self.assertTrue(c.buf.startswith(b"HTTP/1.1 200") or c.buf == b"",
                        "bytes after the HEAD response head: %r" % bytes(c.buf[:100]))
        nxt = c.read_response("GET")
        self.assertEqual(nxt.status, 200, "response after HEAD: %r" % nxt)
        self.assertEqual(nxt.body, get.body)

    def test_head_health_connection_close_sends_no_body(self):
        c = self.conn(self.srv)
        c.send(build_request("HEAD", "/health", [("Connection", "close")]))
        head = c.read_response("HEAD")
        self.assertEqual(head.status, 200, head)
        rest = c.read_until_close()
        self.assertEqual(rest, b"", "HEAD response carried body bytes")


    def test_head_error_has_no_body(self):
        c = self.conn(self.srv)
        c.send(build_request("HEAD", "/nope") + build_request("GET", "/health"))
        head = c.read_response("HEAD")
        self.assertEqual(head.status, 404, head)
        self.assertCommonHeaders(head)
        nxt = c.read_response("GET")
        self.assertEqual(nxt.status, 200, "response after HEAD /nope (body bytes leaked?): %r" % nxt)


class RequestIdTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server()

    def test_generated_ids_are_uuid4_and_unique(self):
        seen = set()
        for path in ["/health"] * 10 + ["/nope"] * 5:
            r = self.srv.get(path)
            rid = r.header("X-Request-ID")
            self.assertIsNotNone(rid, r)
            self.assertRegex(rid, UUID4_RE)
            seen.add(rid)
        self.assertEqual(len(seen), 15, "request ids repeat: %r" % seen)

    def test_valid_incoming_id_kept(self):
        for rid in ("abc-123_DEF.9", "a" * 128):
            with self.subTest(rid=rid):
                r = self.srv.get("/health", headers={"X-Request-ID": rid})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("X-Request-ID"), rid)

    def test_valid_incoming_id_in_error_body(self):
        r = self.srv.get("/nope", headers={"X-Request-ID": "abc-123_DEF.9"})
        err = self.assertJsonError(r, 404, "not_found")
        self.assertEqual(err["request_id"], "abc-123_DEF.9")

    def test_invalid_incoming_id_replaced(self):
        cases = {
            "too long": "a" * 129,
            "space": "abc def",
            "quote": 'abc"def',
            "tab": "abc\tdef",
        }
        for name, bad in cases.items():
            with self.subTest(case=name):
                c = self.conn(self.srv)
                r = c.request("GET", "/health", [("X-Request-ID", bad), ("Connection", "close")])
                self.assertEqual(r.status, 200, r)
                rid = r.header("X-Request-ID")
                self.assertIsNotNone(rid, r)
                self.assertRegex(rid, UUID4_RE, "invalid id %r not replaced by a UUID" % bad)
                c.close()

    def test_control_char_id_replaced_or_rejected(self):
        c = self.conn(self.srv)
        r = c.request("GET", "/health", [("X-Request-ID", "abc\x01def"), ("Connection", "close")])
        self.assertIn(r.status, (200, 400), r)
        self.assertRegex(r.header("X-Request-ID") or "", UUID4_RE,
                         "id with a control char not replaced: %r" % r)
        if r.status == 400:
            self.assertJsonError(r, 400, "malformed_request")


class RoutingErrorsTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server()

    def test_unknown_path_404(self):
        for path in ("/nope", "/health/extra", "/v1/does-not-exist"):
            with self.subTest(path=path):
                r = self.srv.get(path)
                self.assertJsonError(r, 404, "not_found")

    def test_health_with_query_string(self):
        r = self.srv.get("/health?verbose=1")
        self.assertEqual(r.status, 200, r)

    def test_wrong_method_405_with_allow(self):
        for method in ("DELETE", "PUT", "POST", "PATCH"):
            with self.subTest(method=method):
                body = b"" if method != "DELETE" else None
                r = self.srv.request(method, "/health", body=body)
                self.assertJsonError(r, 405, "method_not_allowed")
                allow = r.header("Allow")
                self.assertIsNotNone(allow, "405 without Allow: %r" % r)
                methods = {m.strip().upper() for m in allow.split(",") if m.strip()}
                self.assertTrue({"GET", "HEAD"} <= methods, "Allow: %r" % allow)
                self.assertNotIn(method, methods, "Allow: %r" % allow)

    def test_error_responses_have_common_headers(self):
        c = self.conn(self.srv)
        for method, path in (("GET", "/nope"), ("DELETE", "/health"), ("GET", "/health")):
            r = c.request(method, path)
            self.assertCommonHeaders(r)
            self.assertRegex(r.header("X-Request-ID"), UUID4_RE)

    def test_error_body_is_single_json_object(self):
        r = self.srv.get("/nope")
        self.assertJsonError(r, 404, "not_found")
        doc = json.loads(r.body)
        self.assertEqual(list(doc.keys()), ["error"], r)


class LayeringTest(HapaxTestCase):
    """src/http/ depends on nothing above it (docs/internals/README.md,
    "Layers"): the application composes handlers and middleware into it."""

    ALLOWED = ("http/", "config/", "obs/", "util/")
    # src/tls/ sits below (config/, obs/, util/ only): the TLS side of the
    # connection I/O layer uses it, the HTTP/3 adapter (GnuTLS under QUIC,
    # through h3_int.h) and server.h (the type of the 0-RTT register the
    # application plugs in); nothing else in src/http/.
    TLS_USERS = ("io_tls.c", "io_tls.h", "h3_int.h", "server.h")

    def test_http_includes_nothing_above_it(self):
        top = os.path.join(REPO_ROOT, "src", "http")
        found = []
        for name in sorted(os.listdir(top)):
            with open(os.path.join(top, name)) as f:
                for no, line in enumerate(f, 1):
                    m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                    if m and not m.group(1).startswith(self.ALLOWED) and not (
                            m.group(1).startswith("tls/") and name in self.TLS_USERS):
                        found.append("src/http/%s:%d: %s" % (name, no, line.strip()))
        self.assertEqual(found, [], "src/http/ includes from above it:\n" + "\n".join(found))
