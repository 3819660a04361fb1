"""Request size limits, malformed requests, Expect: 100-continue."""

from harness import ConnectionClosed, HapaxTestCase, build_request

LIMITS = {"server": {"max_header_bytes": "16KB", "max_body_bytes": "16KB"}}


class LimitsTestBase(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server(LIMITS)

    def read_error(self, c, status, code, what):
        try:
            r = c.read_response(timeout=5)
        except ConnectionClosed as e:
            self.fail("%s: connection closed%s without a %d response; got %r"
                      % (what, " (reset)" if e.reset else "", status, e.partial[:200]))
        except TimeoutError:
            self.fail("%s: no %d response within 5s; got %r" % (what, status, bytes(c.buf[:200])))
        self.assertJsonError(r, status, code)
        return r


class HeaderLimitTest(LimitsTestBase):

    def test_header_under_limit_ok(self):
        c = self.conn(self.srv)
        r = c.request("GET", "/health", [("X-Pad", "a" * 8 * 1024)])
        self.assertEqual(r.status, 200, r)

    def test_one_huge_header_431_then_close(self):
        c = self.conn(self.srv)
        c.try_send(build_request("GET", "/health", [("X-Pad", "a" * 64 * 1024)]))
        r = self.read_error(c, 431, "headers_too_large", "64 KB header")
        self.assertClosedAfter(c, what="the 431")

    def test_many_headers_431_then_close(self):
        c = self.conn(self.srv)
        hdrs = [("X-H%d" % i, "v" * 40) for i in range(1500)]  # ~70 KB
        c.try_send(build_request("GET", "/health", hdrs))
        self.read_error(c, 431, "headers_too_large", "1500 headers")
        self.assertClosedAfter(c, what="the 431")

    def test_huge_request_line_rejected(self):
        c = self.conn(self.srv)
        c.try_send(build_request("GET", "/health?" + "q" * 64 * 1024))
        try:
            r = c.read_response(timeout=5)
        except ConnectionClosed as e:
            self.fail("64 KB request line: closed without a response (%r)" % e.partial[:100])
        self.assertIn(r.status, (414, 431), r)
        self.assertCommonHeaders(r)
        self.assertClosedAfter(c, what="the error")


class BodyLimitTest(LimitsTestBase):

    def test_body_under_limit_read_and_connection_reused(self):
        c = self.conn(self.srv)
        r = c.request("POST", "/health", [("Content-Type", "application/json")], b"x" * 8 * 1024)
        self.assertJsonError(r, 405, "method_not_allowed")
        r2 = c.request("GET", "/health")
        self.assertEqual(r2.status, 200, "request after an 8 KB body: %r" % r2)

    def _content_length_over(self, path):
        c = self.conn(self.srv)
        body = b"x" * 100 * 1024
        c.try_send(build_request("POST", path, [("Content-Length", str(len(body))),
                                                ("Content-Type", "application/json")]))
        c.try_send(body)
        self.read_error(c, 413, "body_too_large", "POST %s with a 100 KB body" % path)
        self.assertClosedAfter(c, what="the 413")

    def test_content_length_over_limit_health(self):
        self._content_length_over("/health")

    def test_content_length_over_limit_completions(self):
        self._content_length_over("/v1/completions")

    def test_content_length_over_limit_without_sending_body(self):
        # The declared length alone is enough to refuse.
        c = self.conn(self.srv)
        c.send(build_request("POST", "/health", [("Content-Length", str(100 * 1024))]))
        self.read_error(c, 413, "body_too_large", "Content-Length: 102400, no body sent")
        self.assertClosedAfter(c, what="the 413")

    def test_chunked_body_growing_over_limit(self):
        c = self.conn(self.srv)
        c.send(build_request("POST", "/health", [("Transfer-Encoding", "chunked"),
                                                 ("Content-Type", "application/json")]))
        chunk = b"y" * 8192
        for _ in range(13):  # 104 KB in 8 KB chunks
            if not c.try_send(b"%x\r\n" % len(chunk) + chunk + b"\r\n"):
                break
        c.try_send(b"0\r\n\r\n")
        self.read_error(c, 413, "body_too_large", "chunked body of 104 KB")
        self.assertClosedAfter(c, what="the 413")


class MalformedTest(LimitsTestBase):

    REQUEST_LINE = {
        "garbage": b"GARBAGE\r\n\r\n",
        "bad version": b"GET / HTTP/9.9 junk\r\n\r\n",
    }
    OTHER = {
        "header without colon": b"GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        "bad content-length": b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "bad chunk size": b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    }

    def _check_400_then_close(self, cases):
        for name, raw in cases.items():
            with self.subTest(case=name):
                c = self.conn(self.srv)
                c.send(raw)
                self.read_error(c, 400, "malformed_request", name)
                self.assertClosedAfter(c, what="the 400")
                c.close()

    def test_malformed_request_line_400_then_close(self):
        self._check_400_then_close(self.REQUEST_LINE)

    def test_malformed_headers_or_framing_400_then_close(self):
        self._check_400_then_close(self.OTHER)

    def test_server_still_healthy_after_malformed(self):
        for raw in list(self.REQUEST_LINE.values()) + list(self.OTHER.values()):
            c = self.conn(self.srv)
            c.try_send(raw)
            c.wait_closed(5)
            c.close()
        self.assertEqual(self.srv.get("/health").status, 200)


class ExpectContinueTest(LimitsTestBase):

    def test_100_continue_small_body(self):
        c = self.conn(self.srv)
        c.send(build_request("POST", "/health", [("Content-Length", "5"),
                                                 ("Expect", "100-continue")]))
        try:
            first = c.read_response(timeout=5)
        except TimeoutError:
            self.fail("no '100 Continue' within 5s of an Expect: 100-continue request")
        self.assertEqual(first.status, 100, "expected 100 Continue before the body: %r" % first)
        self.assertTrue(first.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"), first.raw_head)
        c.send(b"hello")
        final = c.read_response()
        self.assertJsonError(final, 405, "method_not_allowed")
        again = c.request("GET", "/health")
        self.assertEqual(again.status, 200, "connection not reusable after 100-continue: %r" % again)

    def test_expect_with_body_over_limit_413_without_continue(self):
        c = self.conn(self.srv)
        c.send(build_request("POST", "/health", [("Content-Length", str(100 * 1024)),
                                                 ("Expect", "100-continue")]))
        r = self.read_error(c, 413, "body_too_large", "Expect: 100-continue with 100 KB")
        self.assertNotEqual(r.status, 100)
        self.assertClosedAfter(c, what="the 413")
