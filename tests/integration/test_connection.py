"""Connection handling: keep-alive, pipelining, Connection: close, HTTP/1.0,
chunked request bodies, max_connections, workers."""

import threading
import time

from harness import ConnectionClosed, HapaxTestCase, build_request, chunked, connect_refused_or_closed


class KeepAliveTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server()

    def test_1000_sequential_requests_one_connection(self):
        c = self.conn(self.srv)
        local = c.sock.getsockname()
        for i in range(1000):
            try:
                r = c.request("GET", "/health")
            except ConnectionClosed as e:
                self.fail("server closed the keep-alive connection after %d requests (%r)"
                          % (i, e.partial[:100]))
            self.assertEqual(r.status, 200, "request #%d: %r" % (i, r))
            self.assertFalse(r.has_token("Connection", "close"), "request #%d: %r" % (i, r))
        self.assertEqual(c.sock.getsockname(), local)
        self.assertFalse(c.closed_now(), "connection closed after 1000 requests")

    def test_request_split_into_tiny_writes(self):
        c = self.conn(self.srv)
        raw = build_request("GET", "/health", [("X-Request-ID", "split-1")])
        for i in range(0, len(raw), 3):
            c.send(raw[i:i + 3])
            time.sleep(0.005)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Request-ID"), "split-1")

    def test_connection_close_request(self):
        c = self.conn(self.srv)
        r = c.request("GET", "/health", [("Connection", "close")])
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.has_token("Connection", "close"),
                        "response to 'Connection: close' lacks 'Connection: close': %r" % r)
        self.assertClosedAfter(c, what="a 'Connection: close' response")

    def test_connection_close_on_error_response(self):
        c = self.conn(self.srv)
        r = c.request("GET", "/nope", [("Connection", "close")])
        self.assertJsonError(r, 404, "not_found")
        self.assertTrue(r.has_token("Connection", "close"), r)
        self.assertClosedAfter(c, what="a 'Connection: close' 404")

    def test_http10_closed_after_response(self):
        c = self.conn(self.srv)
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("status"), "ok", r)
        self.assertClosedAfter(c, what="an HTTP/1.0 response")


class PipeliningTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server()

    def test_three_pipelined_requests_in_order(self):
        c = self.conn(self.srv)
        c.send(build_request("GET", "/health", [("X-Request-ID", "p-1")])
               + build_request("GET", "/nope", [("X-Request-ID", "p-2")])
               + build_request("HEAD", "/health", [("X-Request-ID", "p-3")]))
        r1 = c.read_response("GET")
        r2 = c.read_response("GET")
        r3 = c.read_response("HEAD")
        self.assertEqual((r1.status, r1.header("X-Request-ID")), (200, "p-1"), r1)
        self.assertEqual(r1.json().get("status"), "ok")
        self.assertEqual(r2.header("X-Request-ID"), "p-2", r2)
        self.assertJsonError(r2, 404, "not_found")
        self.assertEqual((r3.status, r3.header("X-Request-ID")), (200, "p-3"), r3)
        # No stray bytes (e.g. a body for the HEAD): the next request's
        # response must be the next thing on the wire.
        r4 = c.request("GET", "/health", [("X-Request-ID", "p-4")])
        self.assertEqual((r4.status, r4.header("X-Request-ID")), (200, "p-4"), r4)

    def test_fifty_pipelined_requests_in_order(self):
        c = self.conn(self.srv)
        reqs = []
        for i in range(50):
            kind = i % 3
            method, path = [("GET", "/health"), ("GET", "/nope"), ("HEAD", "/health")][kind]
            reqs.append((method, path, "pipe-%03d" % i))
        c.send(b"".join(build_request(m, p, [("X-Request-ID", rid)]) for m, p, rid in reqs))
        for method, path, rid in reqs:
            r = c.read_response(method, timeout=10)
            self.assertEqual(r.header("X-Request-ID"), rid, "out of order: %r" % r)
            self.assertEqual(r.status, 404 if path == "/nope" else 200, r)
            if method == "HEAD":
                self.assertEqual(r.body, b"")
        self.assertFalse(c.closed_now(0.2), "connection closed after the pipelined batch")
        self.assertEqual(bytes(c.buf), b"", "stray bytes after 50 responses")

    def test_pipelined_request_after_body(self):
        # The body of the first request must not be parsed as a request.
        c = self.conn(self.srv)
        body = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        c.send(build_request("POST", "/health", [("X-Request-ID", "b-1")], body)
               + build_request("GET", "/health", [("X-Request-ID", "b-2")]))
        r1 = c.read_response()
        self.assertEqual(r1.header("X-Request-ID"), "b-1", r1)
        self.assertJsonError(r1, 405, "method_not_allowed")
        r2 = c.read_response()
        self.assertEqual((r2.status, r2.header("X-Request-ID")), (200, "b-2"), r2)


class ChunkedRequestTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server()

    def test_chunked_body_read_fully_connection_reusable(self):
        c = self.conn(self.srv)
        c.send(build_request("POST", "/health", [("Transfer-Encoding", "chunked"),
                                                 ("Content-Type", "application/json")])
               + chunked(b'{"prompt": "hello world"}', 5))
        r = c.read_response()
        self.assertJsonError(r, 405, "method_not_allowed")
        r2 = c.request("GET", "/health")
        self.assertEqual(r2.status, 200, "request after a chunked body: %r" % r2)

    def test_chunked_with_extensions_and_trailers(self):
        c = self.conn(self.srv)
        c.send(build_request("POST", "/health", [("Transfer-Encoding", "chunked")])
               + b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
        r = c.read_response()
        self.assertJsonError(r, 405, "method_not_allowed")
        r2 = c.request("GET", "/health")
        self.assertEqual(r2.status, 200, r2)

    def test_chunked_body_sent_slowly(self):
        c = self.conn(self.srv)
        c.send(build_request("POST", "/health", [("Transfer-Encoding", "chunked")]))
        for part in (b"3\r\nabc\r\n", b"4\r\n", b"defg", b"\r\n", b"0\r\n", b"\r\n"):
            time.sleep(0.05)
            c.send(part)
        r = c.read_response()
        self.assertJsonError(r, 405, "method_not_allowed")
        self.assertEqual(c.request("GET", "/health").status, 200)


class MaxConnectionsTest(HapaxTestCase):

    def _open_served(self, deadline_s=3.0):
        """A connection that got a 200 (retrying while the server may still
        be counting connections that were just closed)."""
        deadline = time.monotonic() + deadline_s
        last = None
        while True:
            c = self.srv.conn(timeout=3)
            try:
                r = c.request("GET", "/health")
                if r.status == 200 and not r.has_token("Connection", "close"):
                    self._conns.append(c)
                    return c
                last = r
            except (ConnectionClosed, TimeoutError, OSError) as e:
                last = e
            c.close()
            if time.monotonic() >= deadline:
                self.fail("could not get a served keep-alive connection: %r" % (last,))
            time.sleep(0.1)

    def test_sixth_connection_rejected_then_slot_reused(self):
        self.srv = self.start_server({"server": {"max_connections": 5}})
        conns = [self._open_served() for _ in range(5)]

        outcome, detail = connect_refused_or_closed(self.srv.port, timeout=3)
        self.assertIn(outcome, ("closed", "refused"),
                      "6th connection with max_connections=5 was %s: %r" % (outcome, detail))
        if outcome == "closed" and hasattr(detail, "status"):
            self.assertJsonError(detail, 503, "too_many_connections")
        # The five are still served.
        for c in conns:
            self.assertEqual(c.request("GET", "/health").status, 200)
        # Free one slot: a new connection works again.
        conns[0].close()
        self._open_served(deadline_s=5.0)


class WorkersTest(HapaxTestCase):

    def test_two_workers_serve_parallel_connections(self):
        self.srv = self.start_server({"server": {"workers": 2}})
        errors = []
        counts = []
        lock = threading.Lock()

        def keepalive_client(n):
            ok = 0
            try:
                c = self.srv.conn(timeout=10)
                try:
                    for i in range(25):
                        r = c.request("GET", "/health", [("X-Request-ID", "w%d-%d" % (n, i))])
                        if r.status != 200 or r.header("X-Request-ID") != "w%d-%d" % (n, i):
                            raise AssertionError("client %d req %d: %r" % (n, i, r))
                        ok += 1
                finally:
                    c.close()
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append("keep-alive client %d: %r" % (n, e))
            with lock:
                counts.append(ok)

        def short_client(n):
            try:
                r = self.srv.get("/health", timeout=10)
                if r.status != 200:
                    raise AssertionError(repr(r))
                with lock:
                    counts.append(1)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append("short client %d: %r" % (n, e))

        threads = [threading.Thread(target=keepalive_client, args=(i,)) for i in range(16)]
        threads += [threading.Thread(target=short_client, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "client threads still running")
        self.assertEqual(errors, [])
        self.assertEqual(sum(counts), 16 * 25 + 40)
