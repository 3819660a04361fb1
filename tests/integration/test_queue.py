"""The request queue (`queue`) and the state file, end to end.

Queue: FIFO admission under load, a full queue answers 503 queue_full with
Retry-After at once, max_wait answers 503 queue_timeout, a client that
disconnects while queued leaves at once and never reaches a provider.
State file: written atomically every save_interval and at shutdown; after
kill -9 (at any moment) the file is complete JSON and a restart restores
breaker and health state (a provider known to be down gets no traffic); a
corrupt file is kept aside and the gateway starts from its configuration.
"""

import glob
import json
import os
import random
import signal
import threading
import time

from harness import HapaxTestCase, RawConn, build_request, secret
from test_providers import provider, user

REQ_TIMEOUT = 20.0


def chat_req(said="hi"):
    body = json.dumps({"messages": [user(said)]})
    return build_request("POST", "/v1/chat/completions", {"Content-Type": "application/json"}, body)


class QueueTestCase(HapaxTestCase):
    def cfg(self, mock, fault=None, queue=None, extra=None):
        p = provider("openai", mock, fault=fault)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False},
                  "request_timeout": "30s"})
        c = {"llm": p}
        if queue is not None:
            q = {"enabled": True, "max_concurrent": 1, "initial_size": 10, "max_wait": "20s"}
            q.update(queue)
            c["queue"] = q
        c.update(extra or {})
        return c

    def send(self, srv, said):
        c = RawConn(srv.port, timeout=REQ_TIMEOUT)
        self._conns.append(c)
        c.send(chat_req(said))
        return c

    def wait_active(self, mock, n, timeout=5.0):
        st, ok = mock.wait_stats(lambda s: s["active"] >= n, timeout=timeout)
        self.assertTrue(ok, "mock never had %d active requests: %s" % (n, st))


class TestQueue(QueueTestCase):
    def test_admission_is_fifo(self):
        # Each answer takes 2 chunks x 200 ms; one slot.
        mock = self.start_mock(args=["--chunks", "2"])
        srv = self.start_server(self.cfg(mock, fault="slow", queue={}))
        first = self.send(srv, "first")
        self.wait_active(mock, 1)
        order = []
        lock = threading.Lock()

        def run(i):
            c = self.conns_by_i[i]
            r = c.read_response("POST", timeout=REQ_TIMEOUT)
            with lock:
                order.append((i, r.status))

        self.conns_by_i = {}
        for i in range(5):
            self.conns_by_i[i] = self.send(srv, "waiter %d" % i)
            time.sleep(0.05)  # arrival order is the order sent
        threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        self.assertEqual(first.read_response("POST", timeout=REQ_TIMEOUT).status, 200)
        for t in threads:
            t.join(REQ_TIMEOUT)
        self.assertEqual([s for _, s in order], [200] * 5, order)
        self.assertEqual([i for i, _ in order], list(range(5)), "admission was not in arrival order")
        waits = [r.get("queue_wait_ms") for r in srv.logs()[0] if r.get("msg") == "request"
                 and r.get("path") == "/v1/chat/completions"]
        self.assertEqual(len(waits), 6)
        self.assertTrue(all(w is not None for w in waits), waits)
        self.assertEqual(waits, sorted(waits), "later arrivals must have waited longer")

    def test_full_queue_answers_503_at_once(self):
        mock = self.start_mock(args=["--chunks", "5"])
        srv = self.start_server(self.cfg(mock, fault="slow", queue={"initial_size": 1}))
        a = self.send(srv, "a")
        self.wait_active(mock, 1)
        b = self.send(srv, "b")
        time.sleep(0.2)
        t0 = time.monotonic()
        r = self.send(srv, "c").read_response("POST", timeout=REQ_TIMEOUT)
        self.assertLess(time.monotonic() - t0, 0.9, "a full queue must answer at once")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["error"]["code"], "queue_full")
        self.assertTrue(r.json()["error"]["request_id"])
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        self.assertEqual(a.read_response("POST").status, 200)
        self.assertEqual(b.read_response("POST").status, 200)
        self.assertTrue(any(x.get("event") == "queue_rejected" and x.get("reason") == "full"
                            for x in srv.logs()[0]))

    def test_max_wait_answers_503_queue_timeout(self):
        mock = self.start_mock(args=["--chunks", "10"])
        srv = self.start_server(self.cfg(mock, fault="slow", queue={"max_wait": "300ms"}))
        a = self.send(srv, "a")
        self.wait_active(mock, 1)
        t0 = time.monotonic()
        r = self.send(srv, "b").read_response("POST", timeout=REQ_TIMEOUT)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["error"]["code"], "queue_timeout")
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, 1.5)
        self.assertEqual(a.read_response("POST").status, 200)
        self.assertEqual(mock.stats()["requests"], 1, "a timed-out request must not reach a provider")

    def test_disconnect_while_queued_leaves_the_queue(self):
        mock = self.start_mock(args=["--chunks", "3"])
        srv = self.start_server(self.cfg(mock, fault="slow", queue={"initial_size": 1}))
        a = self.send(srv, "a")
        self.wait_active(mock, 1)
        b = self.send(srv, "b")
        time.sleep(0.2)
        b.close()
        time.sleep(0.2)
        # The place b held is free again: c may wait instead of a 503.
        c = self.send(srv, "c")
        self.assertEqual(a.read_response("POST").status, 200)
        self.assertEqual(c.read_response("POST").status, 200)
        self.assertEqual(mock.stats()["requests"], 2, "the request whose client left reached the provider")

    def test_keyless_requests_never_take_queue_places(self):
        """The default chain checks keys before the queue: with the one slot
        busy and one waiting place, keyless requests get 401 at once
        instead of filling the queue."""
        mock = self.start_mock(args=["--chunks", "5"])
        key = secret("hx-queue-client-key-31c7")
        cfg = self.cfg(mock, fault="slow", queue={"initial_size": 1},
                       extra={"auth": {"enabled": True, "keys": [{"name": "app", "key": key}]}})
        srv = self.start_server(cfg)
        auth = "Authorization: Bearer %s\r\n" % key
        body = json.dumps({"messages": [user("a")]})
        def send(hdr):
            c = RawConn(srv.port, timeout=REQ_TIMEOUT)
            self._conns.append(c)
            c.send(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
                    "Content-Length: %d\r\n\r\n%s" % (hdr, len(body), body)).encode())
            return c
        a = send(auth)
        self.wait_active(mock, 1)
        for _ in range(3):
            r = send("").read_response("POST", timeout=5)
            self.assertEqual(r.status, 401, r)
        b = send(auth)  # the waiting place is still free
        self.assertEqual(a.read_response("POST").status, 200)
        self.assertEqual(b.read_response("POST").status, 200)

    def test_queue_off_by_default(self):
        mock = self.start_mock(args=["--chunks", "3"])
        srv = self.start_server(self.cfg(mock, fault="slow"))
        conns = [self.send(srv, "x%d" % i) for i in range(3)]
        self.wait_active(mock, 3)
        for c in conns:
            self.assertEqual(c.read_response("POST").status, 200)


class TestStateFile(QueueTestCase):
    def state_cfg(self, mock, state_dir, fault="500"):
        c = self.cfg(mock, fault=fault, queue={"state_path": state_dir, "save_interval": "100ms",
                                                "max_concurrent": 8})
        c["circuit_breaker"] = {"failure_threshold": 1, "min_requests": 1, "timeout": "60s", "max_requests": 1}
        c["llm"]["panic"] = False  # a provider known to be down gets no traffic
        return c

    def read_state(self, state_dir):
        with open(os.path.join(state_dir, "hapax-state.json")) as f:
            return json.load(f)

    def test_breaker_state_survives_kill_9(self):
        mock = self.start_mock()
        state_dir = os.path.join(self.workdir, "state")
        cfg = self.state_cfg(mock, state_dir)
        srv = self.start_server(cfg, name="first")
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=json.dumps({"messages": [user("x")]}), timeout=REQ_TIMEOUT)
        self.assertGreaterEqual(r.status, 500)
        deadline = time.monotonic() + 5
        while True:
            try:
                st = self.read_state(state_dir)
                if st["providers"]["providers"]["openai"]["breaker"]["state"] == "open":
                    break
            except (OSError, ValueError, KeyError):
                pass
            self.assertLess(time.monotonic(), deadline, "the open breaker never reached the state file")
            time.sleep(0.05)
        self.assertEqual(os.stat(state_dir).st_mode & 0o777, 0o755)
        self.assertEqual(os.stat(os.path.join(state_dir, "hapax-state.json")).st_mode & 0o777, 0o600)
        srv.kill()
        srv.expected_exit = None
        before = mock.stats()["requests"]
        srv2 = self.start_server(cfg, name="second", wait_ready=False)
        deadline = time.monotonic() + 10
        while True:
            try:
                h = srv2.get("/health")
                if h.status in (200, 503) and "providers" in h.json():
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "second server never answered")
            time.sleep(0.05)
        self.assertEqual(h.json()["providers"]["openai"]["breaker"], "open", h.json())
        r = srv2.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                         body=json.dumps({"messages": [user("x")]}), timeout=REQ_TIMEOUT)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(mock.stats()["requests"], before, "a provider known to be down got traffic")

    def test_kill_9_never_leaves_a_corrupt_file(self):
        mock = self.start_mock()
        state_dir = os.path.join(self.workdir, "state")
        cfg = self.state_cfg(mock, state_dir, fault=None)
        cfg["queue"]["save_interval"] = "100ms"
        for i in range(4):
            srv = self.start_server(cfg, name="run%d" % i)
            time.sleep(0.15 + random.random() * 0.3)
            srv.kill()
            srv.expected_exit = None
            st = self.read_state(state_dir)  # raises if torn
            self.assertEqual(st["version"], 1)
            self.assertIn("queue", st)
        self.assertEqual(glob.glob(os.path.join(state_dir, "*.corrupt-*")), [])

    def test_corrupt_file_is_kept_aside(self):
        mock = self.start_mock()
        state_dir = os.path.join(self.workdir, "state")
        os.makedirs(state_dir)
        with open(os.path.join(state_dir, "hapax-state.json"), "w") as f:
            f.write('{"version": 1, "providers": {tru')
        srv = self.start_server(self.state_cfg(mock, state_dir, fault=None))
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=json.dumps({"messages": [user("x")]}), timeout=REQ_TIMEOUT)
        self.assertEqual(r.status, 200, r)
        kept = glob.glob(os.path.join(state_dir, "hapax-state.json.corrupt-*"))
        self.assertEqual(len(kept), 1)
        with open(kept[0]) as f:
            self.assertIn("providers", f.read())
        self.assertTrue(any("corrupt" in (x.get("msg", "") + str(x.get("error", ""))).lower()
                            for x in srv.logs()[0] if x.get("level") == "warn"), srv.stderr_text()[-2000:])
        srv.stop()
        self.assertEqual(self.read_state(state_dir)["version"], 1)

    def test_rate_limit_buckets_survive_a_restart(self):
        mock = self.start_mock()
        state_dir = os.path.join(self.workdir, "state")
        cfg = self.cfg(mock, queue={"state_path": state_dir, "save_interval": "1s", "max_concurrent": 8})
        cfg["rate_limit"] = {"enabled": True, "requests_per_minute": 1, "burst": 1}
        body = json.dumps({"messages": [user("x")]})
        h = {"Content-Type": "application/json"}
        srv = self.start_server(cfg, name="first")
        self.assertEqual(srv.request("POST", "/v1/chat/completions", headers=h, body=body).status, 200)
        r = srv.request("POST", "/v1/chat/completions", headers=h, body=body)
        self.assertEqual(r.status, 429, r)
        self.assertEqual(srv.stop(), 0)  # the final save happens at shutdown
        st = self.read_state(state_dir)
        self.assertTrue(st["ratelimit"]["buckets"], st)
        srv2 = self.start_server(cfg, name="second")
        r = srv2.request("POST", "/v1/chat/completions", headers=h, body=body)
        self.assertEqual(r.status, 429, "a restart handed the client a fresh allowance: %r" % r)
        self.assertEqual(r.header("RateLimit-Remaining"), "0")
