"""Graceful shutdown on SIGTERM, shutdown_timeout, forced exit on a second signal."""

import signal
import time

from harness import ConnectionClosed, HapaxTestCase, connect_refused_or_closed, describe_status


class GracefulShutdownTest(HapaxTestCase):

    def test_inflight_request_completes_new_connections_refused(self):
        srv = self.start_server({"server": {"read_timeout": "10s", "shutdown_timeout": "5s"}})
        c = self.conn(srv)
        c.send(b"POST /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: inflight-1\r\n"
               b"Content-Type: application/json\r\nContent-Length: 20\r\n\r\n")
        body = b'{"a":"0123456789ab"}'
        self.assertEqual(len(body), 20)
        parts = [body[i:i + 5] for i in range(0, 20, 5)]
        c.send(parts[0])
        time.sleep(0.3)
        c.send(parts[1])
        time.sleep(0.3)

        srv.expected_exit = None    # checked below, not again in tearDown
        srv.signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertTrue(c.try_send(parts[2]),
                        "in-flight connection was closed right after SIGTERM")

        # New connections are refused (or closed at once) during shutdown.
        # Signal delivery is asynchronous: allow up to 2 s for the listener
        # to go, but no longer.
        deadline = time.monotonic() + 2.0
        while True:
            outcome, detail = connect_refused_or_closed(srv.port, timeout=2)
            if outcome in ("refused", "closed") or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self.assertIn(outcome, ("refused", "closed"),
                      "a new connection after SIGTERM was %s: %r" % (outcome, detail))
        if outcome == "closed" and hasattr(detail, "status"):
            self.assertNotEqual(detail.status, 200, detail)

        time.sleep(0.3)
        self.assertTrue(c.try_send(parts[3]),
                        "in-flight connection was closed before its body was complete")
        try:
            r = c.read_response(timeout=5)
        except ConnectionClosed as e:
            self.fail("in-flight request got no complete response (%r)" % e.partial[:200])
        except TimeoutError:
            self.fail("in-flight request got no response within 5s of its last byte")
        self.assertEqual(r.header("X-Request-ID"), "inflight-1", r)
        self.assertJsonError(r, 405, "method_not_allowed")

        rc = srv.wait_exit(8)
        self.assertIsNotNone(rc, "hapax still running 8s after SIGTERM with shutdown_timeout=5s")
        self.assertEqual(rc, 0, "exit status after SIGTERM: %s" % describe_status(rc))
        self.assertTrue(c.wait_closed(2), "in-flight connection not closed after exit")

    def test_idle_server_exits_0_on_sigterm(self):
        srv = self.start_server()
        self.assertEqual(srv.get("/health").status, 200)
        srv.expected_exit = None    # checked below, not again in tearDown
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(8)
        self.assertEqual(rc, 0, "exit status after SIGTERM: %s" % describe_status(rc))

    def test_shutdown_timeout_bounds_stuck_connections(self):
        srv = self.start_server({"server": {"read_timeout": "60s", "idle_timeout": "60s",
                                            "shutdown_timeout": "1s", "workers": 2}})
        stuck = self.conn(srv)
        stuck.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Never: ")   # never finished
        idle = self.conn(srv)
        self.assertEqual(idle.request("GET", "/health").status, 200)  # idle keep-alive
        silent = self.conn(srv)                                        # sent nothing
        time.sleep(0.2)
        self.assertTrue(srv.alive())

        srv.expected_exit = None    # checked below, not again in tearDown
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(6)
        self.assertIsNotNone(rc, "hapax still running 6s after SIGTERM with shutdown_timeout=1s "
                                 "and a never-finished request")
        self.assertEqual(rc, 0, "exit status after shutdown_timeout expired: %s"
                         % describe_status(rc))
        for name, c in (("stuck", stuck), ("idle", idle), ("silent", silent)):
            self.assertTrue(c.wait_closed(2), "%s connection not closed after exit" % name)


    def test_shutdown_timeout_single_stuck_connection(self):
        # With two workers and one connection, one worker has nothing to
        # drain and finishes early; the timeout must still end the other.
        srv = self.start_server({"server": {"read_timeout": "60s", "shutdown_timeout": "1s",
                                            "workers": 2}})
        stuck = self.conn(srv)
        stuck.send(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(0.2)
        srv.expected_exit = None    # checked below, not again in tearDown
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(6)
        self.assertIsNotNone(rc, "hapax still running 6s after SIGTERM with shutdown_timeout=1s")
        self.assertEqual(rc, 0, "exit status after shutdown_timeout expired: %s"
                         % describe_status(rc))
        self.assertTrue(stuck.wait_closed(2), "stuck connection not closed after exit")


class ForcedShutdownTest(HapaxTestCase):

    def _second_signal(self, second):
        srv = self.start_server({"server": {"read_timeout": "60s", "shutdown_timeout": "30s"}})
        srv.expected_exit = None    # a forced exit may be non-zero
        srv.allow_leaks = True      # ... and may skip freeing memory
        c = self.conn(srv)
        c.send(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n12345")
        time.sleep(0.2)
        srv.signal(signal.SIGTERM)
        time.sleep(0.5)
        self.assertTrue(srv.alive(), "hapax exited right after SIGTERM although a request was "
                                     "in flight and shutdown_timeout=30s (rc=%s)" % srv.proc.poll())
        srv.signal(second)
        rc = srv.wait_exit(5)
        self.assertIsNotNone(rc, "hapax still running 5s after a second signal (%s)" % second.name)

    def test_second_sigterm_forces_exit(self):
        self._second_signal(signal.SIGTERM)

    def test_sigint_during_shutdown_forces_exit(self):
        self._second_signal(signal.SIGINT)


class FatalSignalTest(HapaxTestCase):
    """A fatal signal logs a JSON line naming it and a backtrace, then the
    process dies of that same signal. (Sanitizer builds keep their own
    report instead: the handler is not installed there.)"""

    def test_sigsegv_logs_a_backtrace(self):
        import harness
        if "asan" in harness.BIN:
            self.skipTest("sanitizer build: ASan reports fatal signals itself")
        srv = self.start_server()
        srv.expected_exit = None
        srv.signal(signal.SIGSEGV)
        rc = srv.wait_exit(10)
        self.assertEqual(rc, -signal.SIGSEGV, describe_status(rc))
        text = srv.stderr_text()
        crash = [r for r in srv.logs()[0] if r.get("event") == "crash"]
        self.assertEqual(len(crash), 1, text[-2000:])
        self.assertEqual(crash[0]["signal"], "SIGSEGV")
        after = text[text.index('"event":"crash"'):]
        self.assertIn("hapax", after, "no backtrace frame after the crash line:\n" + after[:2000])
