"""read_timeout (slowloris, silent connections) and idle_timeout."""

import time

from harness import ConnectionClosed, HapaxTestCase


class ReadTimeoutTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server({"server": {"read_timeout": "1s", "idle_timeout": "60s"}})

    def test_slowloris_headers_get_408(self):
        c = self.conn(self.srv)
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        # Trickle one header byte every 300 ms. A server that restarts its
        # timer on every byte never answers; give up after 8 s of trickling.
        trickle = b"X-Slow: " + b"a" * 1000
        resp = None
        i = 0
        while time.monotonic() - start < 8.0:
            if c.closed_now(0.3) or c.buf:
                break
            if not c.try_send(trickle[i:i + 1]):
                break
            i += 1
        elapsed = time.monotonic() - start
        try:
            resp = c.read_response(timeout=1.0)
        except ConnectionClosed as e:
            self.fail("slowloris: closed after %.1fs without a 408 (got %r)" % (elapsed, e.partial[:200]))
        except TimeoutError:
            self.fail("slowloris: no response after %.1fs of trickling with read_timeout=1s" % elapsed)
        self.assertJsonError(resp, 408, "request_timeout")
        self.assertLess(elapsed, 8.0, "the 408 came only after %.1fs" % elapsed)
        self.assertClosedAfter(c, what="the 408")

    def test_silent_connection_closed(self):
        c = self.conn(self.srv)
        closed = c.wait_closed(6.0)
        self.assertTrue(closed, "a connection that sent nothing was still open after 6s "
                                "with read_timeout=1s")
        # A response is allowed but must be a 408 if present.
        if c.buf:
            self.assertTrue(bytes(c.buf).startswith(b"HTTP/1.1 408"), bytes(c.buf[:200]))

    def test_slow_body_is_cut_off(self):
        # read_timeout bounds the whole request, body included: a body
        # trickled one byte per 300 ms (100 bytes = 30 s) must not be
        # waited for. The server answers 408 or just closes.
        c = self.conn(self.srv)
        c.send(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 8.0 and i < 100:
            if c.closed_now(0.3) or c.buf:
                break
            if not c.try_send(b"z"):
                break
            i += 1
        elapsed = time.monotonic() - start
        self.assertTrue(c.buf or c.closed_now(1.0),
                        "slow body: connection neither answered nor closed after %.1fs "
                        "with read_timeout=1s (%d body bytes sent)" % (elapsed, i))
        if c.buf:
            try:
                resp = c.read_response(timeout=1.0)
            except (ConnectionClosed, TimeoutError):
                self.fail("slow body: incomplete response %r" % bytes(c.buf[:200]))
            self.assertJsonError(resp, 408, "request_timeout")
            self.assertClosedAfter(c, what="the 408")


class IdleTimeoutTest(HapaxTestCase):

    def test_idle_keepalive_closed(self):
        self.srv = self.start_server({"server": {"idle_timeout": "1s", "read_timeout": "30s"}})
        c = self.conn(self.srv)
        r = c.request("GET", "/health")
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.has_token("Connection", "close"), r)
        closed = c.wait_closed(6.0)
        self.assertTrue(closed, "idle keep-alive connection still open 6s after its response "
                                "with idle_timeout=1s")
        self.assertEqual(bytes(c.buf), b"", "idle close should send nothing")

    def test_activity_within_idle_timeout_keeps_connection(self):
        self.srv = self.start_server({"server": {"idle_timeout": "2s", "read_timeout": "30s"}})
        c = self.conn(self.srv)
        # Five requests 0.5 s apart span 2.5 s > idle_timeout, but no gap
        # exceeds it: the connection must stay open.
        for i in range(6):
            try:
                r = c.request("GET", "/health")
            except ConnectionClosed:
                self.fail("keep-alive connection closed after %d requests 0.5s apart "
                          "with idle_timeout=2s" % i)
            self.assertEqual(r.status, 200, r)
            time.sleep(0.5)
