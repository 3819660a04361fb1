"""Resilience of the provider chain, end to end against the mock provider
(tests/mock): retries on the same provider (classes, backoff, Retry-After,
the request deadline, the retry budget), circuit breakers (open, half-open
trials, what counts as a failure), provider health (active probes, passive
evidence, /health and /health/providers/{name}, shutdown while a probe
hangs) and a chaos run of mixed faults under concurrency.

Every test starts its own mocks (one per provider, so request counts are
unambiguous; probes count too) and its own hapax. Timings are kept small
(backoff 50-200 ms, breaker timeout 1 s, probe interval 300 ms); every wait
is bounded and no test asserts a latency target, only lower bounds that a
server skipping a wait would break and upper bounds derived from the
configured deadlines plus generous slack.
"""

import json
import random
import socket
import threading
import time
import unittest

from harness import ConnectionClosed, HapaxTestCase, RawConn, build_request, deep_merge, free_port, secret
from test_providers import MODELS, expected_text, provider, sse_events, user

# Slack on top of a configured deadline before a test calls an answer late
# (the ASan build on two busy cores is slow, but not seconds slow).
SLACK = 2.0
CLIENT_TIMEOUT = 20.0          # any single request to hapax in these tests

ALL_CLASSES = ["rate_limit", "timeout", "server_error", "connection"]


def config(primary, backups=(), retry=None, breaker=None, health=None, **llm_kw):
    """A hapax config: `primary` and `backups` are provider() entries.
    Defaults: fast retries of every class with an unlimited-looking budget,
    a breaker that never opens, health checks off, short timeouts; each
    dict given replaces individual keys of those defaults."""
    section = dict(primary)
    section.update({"connect_timeout": "1s", "first_byte_timeout": "5s", "request_timeout": "10s"})
    r = {"max_retries": 3, "initial_delay": "50ms", "max_delay": "200ms", "multiplier": 2,
         "retryable_errors": list(ALL_CLASSES), "budget_percent": 100}
    r.update(retry or {})
    section["retry"] = r
    h = {"enabled": False}
    if health:
        h = {"enabled": True, "interval": "300ms", "timeout": "1s", "failure_threshold": 2}
        h.update(health)
    section["health_check"] = h
    section.update(llm_kw)
    if backups:
        section["backup_providers"] = list(backups)
    b = {"failure_threshold": 100000, "timeout": "1s", "interval": "60s", "max_requests": 1}
    b.update(breaker or {})
    return {"llm": section, "circuit_breaker": b}


def chat_body(said="hi", stream=False, model=None):
    body = {"messages": [user(said)], "stream": stream}
    if model:
        body["model"] = model
    return json.dumps(body)


class ResilienceCase(HapaxTestCase):

    def chat(self, srv, said="hi", stream=False, model=None, timeout=CLIENT_TIMEOUT, headers=None):
        """POST /v1/chat/completions; returns (response, seconds taken)."""
        t0 = time.monotonic()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        r = srv.request("POST", "/v1/chat/completions", headers=h, body=chat_body(said, stream, model),
                        timeout=timeout)
        return r, time.monotonic() - t0

    def assertServed(self, r, name, attempts=None, family=None, said="hi"):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), name, r)
        if attempts is not None:
            self.assertEqual(r.header("X-Hapax-Attempts"), str(attempts), r)
        if family is not None:
            self.assertEqual(r.json()["choices"][0]["message"]["content"], expected_text(family, said), r)

    def assertError(self, r, status, code):
        """The uniform JSON error envelope (status, code, request_id)."""
        return self.assertJsonError(r, status, code)

    def requests(self, mock):
        return mock.stats()["requests"]

    def log_events(self, srv, event):
        return [rec for rec in srv.logs()[0] if rec.get("event") == event]

    def transitions(self, srv, name):
        return [(rec.get("from"), rec.get("to")) for rec in self.log_events(srv, "breaker_transition")
                if rec.get("provider") == name]

    def wait_transition(self, srv, name, frm, to, timeout=5.0):
        rec = srv.wait_log(lambda x: x.get("event") == "breaker_transition" and x.get("provider") == name
                           and x.get("from") == frm and x.get("to") == to, timeout=timeout)
        self.assertIsNotNone(rec, "no breaker_transition %s -> %s for %s logged; transitions: %r"
                             % (frm, to, name, self.transitions(srv, name)))
        return rec

    def wait_health_log(self, srv, name, state, timeout):
        return srv.wait_log(lambda x: x.get("event") == "provider_health" and x.get("provider") == name
                            and x.get("state") == state, timeout=timeout)

    def health(self, srv):
        r = srv.get("/health")
        try:
            doc = r.json()
        except ValueError:
            self.fail("/health is not JSON: %r" % r)
        return r, doc

    def in_thread(self, fn, *args):
        """Runs fn(*args) in a thread; returns (thread, result dict)."""
        out = {}

        def run():
            try:
                out["value"] = fn(*args)
            except BaseException as e:  # reported by the caller
                out["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, out

    def join(self, t, out, timeout=CLIENT_TIMEOUT + 5):
        t.join(timeout)
        self.assertFalse(t.is_alive(), "a request thread did not finish")
        if "error" in out:
            raise out["error"]
        return out["value"]


# ---------------------------------------------------------------------------
# retries

class RetryTest(ResilienceCase):

    def test_retries_same_provider_until_success(self):
        a, b = self.start_mock(), self.start_mock()
        a.arm("500", 2)
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 3}))
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=3, family="openai")
        self.assertEqual(self.requests(a), 3, "two failed attempts and the successful retry")
        self.assertEqual(self.requests(b), 0, "the backup was used although a retry succeeded")

    def test_retries_exhausted_then_backup(self):
        a, b = self.start_mock(), self.start_mock()
        a.arm("503", -1)
        srv = self.start_server(config(provider("openai", a), [provider("anthropic", b, name="backup")],
                                       retry={"max_retries": 2}))
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=4, family="anthropic")
        self.assertEqual(self.requests(a), 3, "1 attempt + max_retries 2")
        self.assertEqual(self.requests(b), 1)

    def test_max_retries_zero_fails_over_at_once(self):
        a, b = self.start_mock(), self.start_mock()
        a.arm("500", -1)
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 0}))
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=2, family="ollama")
        self.assertEqual(self.requests(a), 1)

    def test_only_listed_classes_are_retried(self):
        a, b = self.start_mock(), self.start_mock()
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 3, "retryable_errors": ["rate_limit"],
                                              "initial_delay": "10ms"}))
        with self.subTest("500 is not retried"):
            a.arm("500", 1)
            r, _ = self.chat(srv)
            self.assertServed(r, "backup", attempts=2)
            self.assertEqual(self.requests(a), 1)
        with self.subTest("429 is retried"):
            a.reset()
            b.reset()
            a.arm("429", 1, retry_after=0)
            r, _ = self.chat(srv)
            self.assertServed(r, "openai", attempts=2, family="openai")
            self.assertEqual(self.requests(a), 2)
            self.assertEqual(self.requests(b), 0)
        with self.subTest("a malformed answer counts as server_error: not retried"):
            a.reset()
            b.reset()
            a.arm("malformed-json", 1)
            r, _ = self.chat(srv)
            self.assertServed(r, "backup", attempts=2)
            self.assertEqual(self.requests(a), 1)

    def test_error_classes_map_to_retries(self):
        # Each class alone: the matching failure is retried on the same
        # provider (attempts 2 on it), the others fail over. A request the
        # upstream read in full and then left unanswered (hang: first-byte
        # timeout; close, reset after the head, a broken 2xx) may be
        # billed: only the opt-in class "unanswered" retries it.
        closed = free_port()
        cases = [
            # (retryable_errors, how the primary fails, retried?)
            (["server_error"], "malformed-json", False),
            (["unanswered"], "malformed-json", True),
            (["server_error"], "502", True),
            (["timeout"], "hang", False),
            (["unanswered"], "hang", True),
            (["server_error"], "hang", False),
            (["connection"], "refused", True),
            (["connection"], "reset", False),
            (["unanswered"], "reset", True),
            (["connection"], "close", False),
            (["unanswered"], "close", True),
            (["rate_limit", "timeout", "server_error"], "close", False),
            (["rate_limit", "timeout", "server_error"], "refused", False),
        ]
        for classes, how, retried in cases:
            with self.subTest(classes=classes, failure=how):
                b = self.start_mock()
                if how == "refused":
                    prim = provider("openai", endpoint="http://127.0.0.1:%d/v1" % closed)
                    a = None
                else:
                    a = self.start_mock()
                    a.arm(how, 1)
                    prim = provider("openai", a)
                srv = self.start_server(config(prim, [provider("ollama", b, name="backup")],
                                               retry={"max_retries": 1, "retryable_errors": classes},
                                               first_byte_timeout="500ms"))
                r, _ = self.chat(srv)
                if retried and how == "refused":
                    # refused again on the retry, then the backup
                    self.assertServed(r, "backup", attempts=3)
                elif retried:
                    self.assertServed(r, "openai", attempts=2, family="openai")
                    self.assertEqual(self.requests(a), 2)
                else:
                    self.assertServed(r, "backup", attempts=2)
                    if a is not None:
                        self.assertEqual(self.requests(a), 1)
                srv.stop()

    def test_auth_and_not_found_fail_over_without_retry(self):
        for status in ("401", "403", "404"):
            with self.subTest(status=status):
                a, b = self.start_mock(), self.start_mock()
                a.arm(status, -1)
                srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                               retry={"max_retries": 3}))
                r, _ = self.chat(srv)
                self.assertServed(r, "backup", attempts=2)
                self.assertEqual(self.requests(a), 1, "upstream %s was retried" % status)
                srv.stop()

    def test_retry_after_is_honoured(self):
        a = self.start_mock()
        a.arm("429", 1, retry_after=1)
        # max_delay bounds a Retry-After: 2 s lets this one be honoured.
        srv = self.start_server(config(provider("openai", a),
                                       retry={"max_retries": 3, "initial_delay": "10ms", "max_delay": "2s"}))
        t, out = self.in_thread(self.chat, srv)
        # Sample the mock while the request waits: the retry must not come
        # with the 10-50 ms backoff but after the provider's Retry-After.
        first_seen = second_seen = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and t.is_alive():
            n = self.requests(a)
            now = time.monotonic()
            if n >= 1 and first_seen is None:
                first_seen = now
            if n >= 2 and second_seen is None:
                second_seen = now
                break
            time.sleep(0.05)
        r, took = self.join(t, out)
        self.assertServed(r, "openai", attempts=2, family="openai")
        self.assertEqual(self.requests(a), 2)
        self.assertGreaterEqual(took, 0.9, "the retry did not wait for Retry-After: 1 (took %.2fs)" % took)
        if first_seen is not None and second_seen is not None:
            self.assertGreaterEqual(second_seen - first_seen, 0.7,
                                    "the second attempt came %.2fs after the first" % (second_seen - first_seen))

    def test_retry_after_beyond_deadline_is_not_waited_for(self):
        a, b = self.start_mock(), self.start_mock()
        a.arm("429", -1, retry_after=30)
        srv = self.start_server(config(provider("openai", a), [provider("anthropic", b, name="backup")],
                                       retry={"max_retries": 3}, request_timeout="2s"))
        r, took = self.chat(srv)
        self.assertServed(r, "backup", attempts=2, family="anthropic")
        self.assertLess(took, 2.0, "waited for a Retry-After longer than the deadline (%.2fs)" % took)
        self.assertEqual(self.requests(a), 1)

    def test_retry_after_beyond_deadline_single_provider(self):
        a = self.start_mock()
        a.arm("429", -1, retry_after=30)
        srv = self.start_server(config(provider("openai", a), retry={"max_retries": 3}, request_timeout="2s"))
        r, took = self.chat(srv)
        self.assertError(r, 429, "rate_limit_exceeded")
        self.assertEqual(r.header("Retry-After"), "30", r)
        self.assertEqual(r.header("X-Hapax-Attempts"), "1", r)
        self.assertLess(took, 2.0, "answered after the deadline (%.2fs)" % took)
        self.assertEqual(self.requests(a), 1)

    def test_backoff_beyond_deadline_fails_over_at_once(self):
        a, b = self.start_mock(), self.start_mock()
        a.arm("500", 1)
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 3, "initial_delay": "5s", "max_delay": "10s"},
                                       request_timeout="2s"))
        r, took = self.chat(srv)
        self.assertServed(r, "backup", attempts=2, family="ollama")
        self.assertLess(took, 2.0, "waited for a backoff longer than the deadline (%.2fs)" % took)
        self.assertEqual(self.requests(a), 1)

    def test_client_gone_during_retry_wait_cancels_the_retry(self):
        a = self.start_mock()
        a.arm("429", 1, retry_after=1)
        srv = self.start_server(config(provider("openai", a), retry={"max_retries": 3}))
        c = self.conn(srv)
        c.send(build_request("POST", "/v1/chat/completions", {"Content-Type": "application/json"},
                             chat_body()))
        st, ok = a.wait_stats(lambda s: s["requests"] >= 1, timeout=5)
        self.assertTrue(ok, st)
        c.close()
        time.sleep(1.6)
        self.assertEqual(self.requests(a), 1, "the retry went out although the client had gone")
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1)

    def test_sigterm_during_retry_wait(self):
        """A request waiting out a 30 s Retry-After is answered at once when
        shutdown starts (with the provider's last error), rather than
        holding the drain until shutdown_timeout (20 s here)."""
        a = self.start_mock()
        a.arm("429", -1, retry_after=30)
        srv = self.start_server(dict(config(provider("openai", a), retry={"max_retries": 3},
                                            request_timeout="60s"),
                                     server={"shutdown_timeout": "20s"}))
        c = self.conn(srv, timeout=10)
        c.send(build_request("POST", "/v1/chat/completions", {"Content-Type": "application/json"},
                             chat_body()))
        st, ok = a.wait_stats(lambda s: s["requests"] >= 1, timeout=5)
        self.assertTrue(ok, st)
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.signal(15)
        resp = c.read_response("POST", timeout=5)
        answered = time.monotonic() - t0
        self.assertEqual(resp.status, 429, resp)
        self.assertEqual(resp.json()["error"]["code"], "rate_limit_exceeded", resp)
        self.assertLess(answered, 3, "the waiting request was answered %.1fs after SIGTERM" % answered)
        rc = srv.wait_exit(10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit status %r after SIGTERM with a request waiting to retry" % rc)
        self.assertLess(took, 5, "shutdown took %.1fs" % took)
        self.assertEqual(self.requests(a), 1, "a retry went out during shutdown")

    def test_retries_never_outlive_the_deadline(self):
        a = self.start_mock()
        a.arm("hang", -1)
        # A hung request was sent: retried only with the opt-in class.
        srv = self.start_server(config(provider("openai", a),
                                       retry={"max_retries": 50, "initial_delay": "20ms", "max_delay": "50ms",
                                              "retryable_errors": ALL_CLASSES + ["unanswered"]},
                                       first_byte_timeout="400ms", request_timeout="1500ms"))
        for stream in (False, True):
            with self.subTest(stream=stream):
                a.reset()
                a.arm("hang", -1)
                r, took = self.chat(srv, stream=stream)
                self.assertError(r, 504, "gateway_timeout")
                self.assertLess(took, 1.5 + SLACK, "answered %.2fs after the start, deadline 1.5s" % took)
                self.assertGreaterEqual(took, 1.0, "gave up long before the deadline (%.2fs)" % took)
                n = self.requests(a)
                self.assertGreaterEqual(n, 2, "the hung attempt was not retried")
                self.assertLessEqual(n, 4, "more attempts than fit into the deadline: %d" % n)
                self.assertEqual(r.header("X-Hapax-Attempts"), str(n), r)
                st, ok = a.wait_stats(lambda s: s["active"] == 0, timeout=5)
                self.assertTrue(ok, "hung upstream calls outlived the request: %r" % st)

    def test_reset_mid_stream_is_never_retried(self):
        a, b = self.start_mock(), self.start_mock()
        a.arm("reset", 1)
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 3}))
        r, _ = self.chat(srv, stream=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Hapax-Provider"), "openai", r)
        self.assertEqual(r.header("X-Hapax-Attempts"), "1", r)
        events = sse_events(r.body)
        self.assertNotIn("[DONE]", [d for _, d in events], "a failed stream must not look complete")
        last = json.loads(events[-1][1])
        self.assertIn("error", last, "the stream does not end with an error event: %r" % r.body[-300:])
        self.assertEqual(self.requests(a), 1, "a stream that had started was retried")
        self.assertEqual(self.requests(b), 0, "a stream that had started failed over")

    def test_malformed_stream_is_never_retried(self):
        a, b = self.start_mock(), self.start_mock()
        a.arm("malformed-sse", 1)
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 3}))
        r, _ = self.chat(srv, stream=True)
        self.assertEqual(r.status, 200, r)
        events = sse_events(r.body)
        self.assertIn("error", json.loads(events[-1][1]), r.body[-300:])
        self.assertEqual(self.requests(a), 1)
        self.assertEqual(self.requests(b), 0)


class RetryBudgetTest(ResilienceCase):

    def test_budget_limits_retries_under_a_burst(self):
        # budget_percent 0 leaves only the floor: 2 retries/s over the 10 s
        # window, i.e. at most 20 retries in this test, for n requests that
        # would each retry 5 times (n * 6 upstream requests unbudgeted).
        n = 30
        floor = 2 * 10
        a = self.start_mock()
        a.arm("500", -1)
        srv = self.start_server(config(provider("openai", a),
                                       retry={"max_retries": 5, "budget_percent": 0, "initial_delay": "20ms",
                                              "max_delay": "50ms"}))
        results = [None] * n
        barrier = threading.Barrier(n)

        def one(i):
            barrier.wait(10)
            results[i] = self.chat(srv)[0]
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CLIENT_TIMEOUT + 5)
            self.assertFalse(t.is_alive(), "a request did not finish")
        attempts = []
        for r in results:
            self.assertIsNotNone(r)
            self.assertError(r, 502, "bad_gateway")
            attempts.append(int(r.header("X-Hapax-Attempts")))
        total = self.requests(a)
        self.assertEqual(total, sum(attempts), "X-Hapax-Attempts do not add up to the upstream requests")
        self.assertLessEqual(total, n + floor, "retries beyond the budget: %d upstream requests for %d "
                             "requests (unbudgeted: %d); attempts %r" % (total, n, n * 6, attempts))
        self.assertGreater(total, n, "the floor of the budget allows some retries")
        self.assertGreaterEqual(attempts.count(1), n - floor,
                                "more requests retried than the floor allows: %r" % attempts)

    def test_floor_lets_a_quiet_gateway_retry(self):
        a = self.start_mock()
        a.arm("500", 2)
        srv = self.start_server(config(provider("openai", a), retry={"max_retries": 2, "budget_percent": 0}))
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=3, family="openai")


# ---------------------------------------------------------------------------
# circuit breaker

class BreakerTest(ResilienceCase):

    # three failed requests in a row open it (failure rate 100 % of at least 3)
    BREAKER = {"failure_threshold": 3, "min_requests": 3, "failure_rate": 100, "timeout": "1s", "max_requests": 1}

    def pair(self, breaker=None, fault_a=None, **kw):
        a, b = self.start_mock(), self.start_mock()
        if fault_a:
            a.arm(fault_a, -1)
        br = dict(self.BREAKER)
        br.update(breaker or {})
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 0}, breaker=br, **kw))
        return a, b, srv

    def open_breaker(self, srv, a):
        for i in range(3):
            r, _ = self.chat(srv)
            self.assertServed(r, "backup", attempts=2)
        self.assertEqual(self.requests(a), 3)
        rec = self.wait_transition(srv, "openai", "closed", "open")
        return rec

    def test_opens_after_threshold_and_skips_provider(self):
        a, b, srv = self.pair(fault_a="500")
        for _ in range(2):
            r, _ = self.chat(srv)
            self.assertServed(r, "backup", attempts=2)
        time.sleep(0.2)
        self.assertEqual(self.transitions(srv, "openai"), [], "opened before failure_threshold 3")
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=2)
        self.assertEqual(self.requests(a), 3)
        self.wait_transition(srv, "openai", "closed", "open")
        for _ in range(5):
            r, _ = self.chat(srv)
            self.assertServed(r, "backup", attempts=1, family="ollama")
        self.assertEqual(self.requests(a), 3, "an open breaker let requests through")
        self.assertEqual(self.transitions(srv, "openai"), [("closed", "open")])
        self.assertEqual(self.transitions(srv, "backup"), [])

    def breaker_metric(self, srv, name):
        r = srv.get("/metrics")
        self.assertEqual(r.status, 200, r)
        for line in r.body.decode().splitlines():
            if line.startswith('hapax_circuit_breaker_state{provider="%s"}' % name):
                return float(line.split()[-1])
        self.fail("no hapax_circuit_breaker_state for %s in /metrics" % name)

    def test_breaker_state_is_exported(self):
        a, b, srv = self.pair(fault_a="500")
        self.assertEqual(self.breaker_metric(srv, "openai"), 0)
        self.open_breaker(srv, a)
        self.assertEqual(self.breaker_metric(srv, "openai"), 1)
        self.assertEqual(self.breaker_metric(srv, "backup"), 0)
        time.sleep(1.2)  # the breaker's timeout: the next look turns it half-open
        self.assertEqual(self.breaker_metric(srv, "openai"), 2)
        text = srv.get("/metrics").body.decode()
        self.assertIn('hapax_failovers_total{from_provider="openai"} 3', text)
        self.assertIn('hapax_provider_failures_total{provider="openai",class="server_error"} 3', text)

    def test_half_open_trial_success_closes(self):
        a, b, srv = self.pair(fault_a="500")
        self.open_breaker(srv, a)
        t_open = time.monotonic()
        a.arm("none", 0)
        # Poll with requests until the provider is tried again: the backup
        # serves until the breaker's timeout (1 s) has passed.
        deadline = t_open + 8
        r = None
        while time.monotonic() < deadline:
            r, _ = self.chat(srv)
            if r.header("X-Hapax-Provider") == "openai":
                break
            self.assertServed(r, "backup", attempts=1)
            time.sleep(0.1)
        waited = time.monotonic() - t_open
        self.assertServed(r, "openai", attempts=1, family="openai")
        self.assertGreaterEqual(waited, 0.8, "the breaker admitted a trial %.2fs after opening" % waited)
        self.assertEqual(self.requests(a), 4, "exactly one trial request")
        self.wait_transition(srv, "openai", "open", "half_open")
        self.wait_transition(srv, "openai", "half_open", "closed")
        for _ in range(3):
            r, _ = self.chat(srv)
            self.assertServed(r, "openai", attempts=1)
        self.assertEqual(self.requests(a), 7)

    def test_half_open_trial_failure_reopens(self):
        a, b, srv = self.pair(fault_a="502")
        self.open_breaker(srv, a)
        time.sleep(1.2)
        r, _ = self.chat(srv)        # the trial: fails, the backup serves
        self.assertServed(r, "backup", attempts=2)
        self.assertEqual(self.requests(a), 4)
        self.wait_transition(srv, "openai", "open", "half_open")
        self.wait_transition(srv, "openai", "half_open", "open")
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=1)
        self.assertEqual(self.requests(a), 4, "reopened breaker let a request through")
        self.assertEqual(self.transitions(srv, "openai"),
                         [("closed", "open"), ("open", "half_open"), ("half_open", "open")])

    def test_half_open_admits_max_requests_trials(self):
        a, b, srv = self.pair(fault_a="500")
        self.open_breaker(srv, a)
        a.arm("slow", 1, delay_ms=100)    # the trial takes ~0.8 s
        time.sleep(1.2)
        t, out = self.in_thread(self.chat, srv)
        st, ok = a.wait_stats(lambda s: s["active"] >= 1, timeout=5)
        self.assertTrue(ok, "the trial did not reach the provider: %r" % st)
        r2, _ = self.chat(srv)          # while the only trial is in flight
        self.assertServed(r2, "backup", attempts=1)
        r1, _ = self.join(t, out)
        self.assertServed(r1, "openai", attempts=1, family="openai")
        self.assertEqual(self.requests(a), 4)
        self.wait_transition(srv, "openai", "half_open", "closed")

    def test_only_provider_open_is_503_with_retry_after(self):
        a = self.start_mock()
        a.arm("500", -1)
        # panic off: with panic on (the default) the only provider is tried anyway
        srv = self.start_server(config(provider("openai", a), retry={"max_retries": 0},
                                       breaker={"failure_threshold": 3, "min_requests": 3, "timeout": "3s"},
                                       panic=False))
        for _ in range(3):
            r, _ = self.chat(srv)
            self.assertError(r, 502, "bad_gateway")
        self.wait_transition(srv, "openai", "closed", "open")
        r, _ = self.chat(srv)
        err = self.assertError(r, 503, "service_unavailable")
        self.assertIn("circuit breaker", err["message"])
        self.assertIn("openai", err["message"])
        ra = r.header("Retry-After")
        self.assertIsNotNone(ra, r)
        self.assertTrue(ra.isdigit() and 1 <= int(ra) <= 3,
                        "Retry-After %r is not the time left until the trial (<= 3 s)" % ra)
        self.assertEqual(self.requests(a), 3)
        for stream in (False, True):
            r, _ = self.chat(srv, stream=stream)
            self.assertError(r, 503, "service_unavailable")
        self.assertEqual(self.requests(a), 3)

    def test_all_skipped_503_lists_every_reason(self):
        # openai: breaker open (malformed answers to chats; its probes,
        # which ignore the body, succeed); nokey: no API key; oll: down
        # (failed probes). Nothing can be asked: 503 naming each reason,
        # Retry-After = time until openai's breaker admits a trial.
        a, c = self.start_mock(), self.start_mock()
        srv = self.start_server(config(
            provider("openai", a, fault="malformed-json"),
            [provider("anthropic", endpoint="", key="", name="nokey"), provider("ollama", c, name="oll")],
            retry={"max_retries": 0}, breaker={"failure_threshold": 2, "min_requests": 2, "timeout": "30s"},
            health={"interval": "300ms", "failure_threshold": 3}, panic=False))
        for _ in range(2):
            r, _ = self.chat(srv)
            self.assertServed(r, "oll", attempts=2)
        self.wait_transition(srv, "openai", "closed", "open")
        c.arm("503", -1)
        self.assertIsNotNone(self.wait_health_log(srv, "oll", "unhealthy", 5), srv.get("/health").body)
        r, doc = self.health(srv)
        # An open breaker makes the provider down in /health too, so with
        # every provider out the gateway says it is unavailable.
        self.assertEqual(doc["providers"]["openai"]["status"], "down", doc)
        self.assertEqual(doc["providers"]["openai"]["breaker"], "open", doc)
        self.assertEqual(doc["status"], "unavailable", doc)
        self.assertEqual(r.status, 503, doc)
        na = self.requests(a)
        r, _ = self.chat(srv)
        err = self.assertError(r, 503, "service_unavailable")
        msg = err["message"]
        self.assertIn("openai: circuit breaker open", msg)
        self.assertIn("nokey", msg)
        self.assertIn("ANTHROPIC_API_KEY", msg)
        self.assertIn("oll: unhealthy", msg)
        self.assertIn("503", msg, "the unhealthy provider's last error is named")
        self.assertNotIn("sk-test-openai-key", r.body.decode())
        ra = r.header("Retry-After")
        self.assertTrue(ra and ra.isdigit() and 25 <= int(ra) <= 30,
                        "Retry-After %r is not the time until the breaker admits a trial (~30 s)" % ra)
        self.assertOnlyGets(a, na)

    def assertOnlyGets(self, mock, before):
        """No chat request reached `mock` since it had `before` requests
        (probes, GET, may have)."""
        last = mock.last()
        if self.requests(mock) != before:
            self.assertEqual(last["method"], "GET", "a chat request reached a skipped provider: %r" % last)

    def test_client_errors_do_not_count(self):
        a, b, srv = self.pair()
        for status in ("400", "422"):
            a.arm(status, 5)
            for _ in range(5):
                r, _ = self.chat(srv)
                self.assertError(r, 400, "invalid_request")
                self.assertEqual(r.header("X-Hapax-Provider"), "openai", r)
        self.assertEqual(self.requests(a), 10)
        self.assertEqual(self.transitions(srv, "openai"), [], "client errors opened the breaker")
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")
        self.assertEqual(self.requests(b), 0)

    def test_client_error_is_no_verdict(self):
        # Neither a failure nor a success: two failures, a 400, one more
        # failure make three consecutive failures.
        a, b, srv = self.pair()
        a.arm("500", 2)
        for _ in range(2):
            self.assertServed(self.chat(srv)[0], "backup", attempts=2)
        a.arm("400", 1)
        self.assertError(self.chat(srv)[0], 400, "invalid_request")
        self.assertEqual(self.transitions(srv, "openai"), [])
        a.arm("500", 1)
        self.assertServed(self.chat(srv)[0], "backup", attempts=2)
        self.wait_transition(srv, "openai", "closed", "open")

    def test_failures_count_within_interval_only(self):
        a, b, srv = self.pair(breaker={"interval": "1s"})
        a.arm("500", 2)
        for _ in range(2):
            self.assertServed(self.chat(srv)[0], "backup", attempts=2)
        time.sleep(1.3)
        a.arm("500", 2)
        for _ in range(2):
            self.assertServed(self.chat(srv)[0], "backup", attempts=2)
        self.assertEqual(self.transitions(srv, "openai"), [],
                         "failures from before the interval still counted")
        a.arm("500", 1)
        self.assertServed(self.chat(srv)[0], "backup", attempts=2)
        self.wait_transition(srv, "openai", "closed", "open")

    def test_retries_of_one_request_count_once(self):
        """The breaker counts requests, not attempts: one request retrying
        a 503 several times is one failure, so it cannot open a breaker
        that needs three (failure_threshold/min_requests 3)."""
        a, b = self.start_mock(), self.start_mock()
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 5, "initial_delay": "10ms"},
                                       breaker=self.BREAKER))
        a.arm("503", -1)
        r, _ = self.chat(srv)
        self.assertServed(r, "backup")
        self.assertGreaterEqual(self.requests(a), 3, "too few retries to prove anything")
        self.assertEqual(self.transitions(srv, "openai"), [], "one request's retries opened the breaker")
        b.arm("none", 0)
        a.arm("none", 0)
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")

    def test_failed_streams_count_as_failures(self):
        """A provider that breaks every stream after the first byte fails
        as surely as one answering 500 (connection errors, malformed
        answers are breaker failures): its breaker must open.

        (A regression test: mid-stream failures once gave the breaker no
        verdict, so such a provider was never taken out of rotation.)"""
        for fault in ("reset", "malformed-sse"):
            with self.subTest(fault=fault):
                a, b, srv = self.pair(fault_a=fault)
                for _ in range(3):
                    r, _ = self.chat(srv, stream=True)
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.header("X-Hapax-Provider"), "openai", r)
                    self.assertIn("error", json.loads(sse_events(r.body)[-1][1]), r.body[-300:])
                self.assertEqual(self.requests(a), 3)
                rec = srv.wait_log(lambda x: x.get("event") == "breaker_transition", timeout=1.0)
                r, _ = self.chat(srv, stream=True)
                self.assertEqual(self.requests(a), 3,
                                 "the breaker of a provider whose streams failed 3 times in a row "
                                 "(failure_threshold 3) did not open: transitions %r"
                                 % self.transitions(srv, "openai"))
                self.assertIsNotNone(rec)
                srv.stop()


# ---------------------------------------------------------------------------
# provider health

class HealthTest(ResilienceCase):

    HEALTH = {"interval": "300ms", "timeout": "1s", "failure_threshold": 2}

    def pair(self, health=None, **kw):
        a, b = self.start_mock(), self.start_mock()
        h = dict(self.HEALTH)
        h.update(health or {})
        srv = self.start_server(config(provider("openai", a), [provider("anthropic", b, name="backup")],
                                       retry={"max_retries": 0}, health=h, **kw))
        return a, b, srv

    def wait_down(self, srv, name, timeout=0.6 + 4.0):
        rec = self.wait_health_log(srv, name, "unhealthy", timeout)
        self.assertIsNotNone(rec, "%s was not marked unhealthy within %.1fs; /health: %r"
                             % (name, timeout, srv.get("/health").body))
        return rec

    def wait_up_again(self, srv, name, timeout=0.3 + 4.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = [x for x in self.log_events(srv, "provider_health") if x.get("provider") == name]
            if recs and recs[-1].get("state") == "healthy":
                return recs[-1]
            time.sleep(0.05)
        self.fail("%s did not become healthy again within %.1fs; /health: %r"
                  % (name, timeout, srv.get("/health").body))

    def assertOnlyProbes(self, mock):
        last = mock.last()
        if last is not None:
            self.assertEqual((last["method"], last["path"]), ("GET", "/v1/models"),
                             "a chat request reached an unhealthy provider: %r" % last)

    def test_unhealthy_provider_skipped_and_recovers(self):
        a, b, srv = self.pair()
        r, doc = self.health(srv)
        self.assertEqual((r.status, doc["status"]), (200, "ok"), doc)
        a.arm("503", -1)
        rec = self.wait_down(srv, "openai")
        self.assertIn("503", rec.get("error", ""), rec)
        r, doc = self.health(srv)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(doc["status"], "degraded", doc)
        p = doc["providers"]["openai"]
        self.assertEqual(p["status"], "down", p)
        self.assertIs(p["healthy"], False, p)
        self.assertGreaterEqual(p["consecutive_failures"], 2, p)
        self.assertGreaterEqual(p["checks"], 2, p)
        self.assertIn("503", p["last_error"], p)
        self.assertEqual(p["type"], "openai", p)
        self.assertEqual(p["model"], MODELS["openai"], p)
        self.assertEqual(doc["providers"]["backup"]["status"], "up", doc)
        r = srv.get("/health/providers/openai")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["openai"]["status"], "down", r)
        r = srv.get("/health/providers/backup")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["backup"]["status"], "up", r)
        self.assertJsonError(srv.get("/health/providers/nope"), 404, "not_found")

        for stream in (False, True, False):
            r, _ = self.chat(srv, stream=stream)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-Hapax-Provider"), "backup", r)
            self.assertEqual(r.header("X-Hapax-Attempts"), "1", "an unhealthy provider was tried: %r" % r)
        self.assertOnlyProbes(a)

        a.arm("none", 0)
        self.wait_up_again(srv, "openai")
        r, doc = self.health(srv)
        self.assertEqual((r.status, doc["status"]), (200, "ok"), doc)
        self.assertEqual(doc["providers"]["openai"]["consecutive_failures"], 0, doc)
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")
        self.assertEqual(srv.get("/health/providers/openai").status, 200)

    def test_passive_evidence_counts_requests_not_attempts(self):
        """One request that retries an unreachable provider four times is
        one failure for health; the second failing request makes two
        (failure_threshold 2). Probes are slowed right down so only real
        traffic speaks."""
        a = self.start_mock()
        srv = self.start_server(config(provider("openai", a), retry={"max_retries": 3},
                                       health={"interval": "60s", "failure_threshold": 2}))
        a.stop()  # connection refused: what a probe would see too
        r, _ = self.chat(srv)
        self.assertEqual(r.status, 503, r)  # nothing answered
        self.assertEqual(r.header("X-Hapax-Attempts"), "4", r)
        _, doc = self.health(srv)
        p = doc["providers"]["openai"]
        self.assertIs(p["healthy"], True, p)
        self.assertEqual(p["consecutive_failures"], 1, p)
        r, _ = self.chat(srv)
        self.assertEqual(r.status, 503, r)  # nothing answered
        _, doc = self.health(srv)
        self.assertIs(doc["providers"]["openai"]["healthy"], False, doc)

    def test_stopped_provider_down_then_back_on_same_port(self):
        a, b, srv = self.pair()
        port = a.port
        a.stop()
        self.wait_down(srv, "openai")
        r, doc = self.health(srv)
        p = doc["providers"]["openai"]
        self.assertEqual(p["status"], "down", p)
        self.assertTrue(p.get("last_error"), p)
        self.assertNotIn(str(port), p["last_error"], "last_error carries the URL: %r" % p)
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=1)
        a2 = self.start_mock(name="mock_again", args=["--port", str(port)])
        self.assertEqual(a2.port, port)
        self.wait_up_again(srv, "openai")
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")

    def test_all_down_is_unavailable(self):
        a, b, srv = self.pair(panic=False)  # panic (the default) would try one anyway: test_breaker.py
        a.arm("503", -1)
        b.arm("500", -1)
        self.wait_down(srv, "openai")
        self.wait_down(srv, "backup")
        r, doc = self.health(srv)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(doc["status"], "unavailable", doc)
        for name in ("openai", "backup"):
            self.assertEqual(doc["providers"][name]["status"], "down", doc)
            self.assertEqual(srv.get("/health/providers/" + name).status, 503)
        na, nb = self.requests(a), self.requests(b)
        r, _ = self.chat(srv)
        err = self.assertError(r, 503, "service_unavailable")
        self.assertIn("unhealthy", err["message"])
        self.assertIn("openai", err["message"])
        self.assertIn("backup", err["message"])
        self.assertEqual(r.header("Retry-After"), "5", r)
        # probes may have come meanwhile, but no chat request
        self.assertOnlyProbes(a)
        self.assertLessEqual(self.requests(a) - na, 3)
        self.assertLessEqual(self.requests(b) - nb, 3)

    def test_real_traffic_is_evidence(self):
        # Probes far apart: two requests that could not reach the primary
        # mark it down (a 500 would not: the breaker weighs those).
        a, b, srv = self.pair(health={"interval": "60s"})
        a.stop()
        for _ in range(2):
            r, _ = self.chat(srv)
            self.assertServed(r, "backup", attempts=2)
        self.wait_down(srv, "openai", timeout=2)
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=1)

    def test_probes_use_the_cheapest_endpoint(self):
        mocks = {k: self.start_mock() for k in ("openai", "anthropic", "ollama")}
        srv = self.start_server(config(provider("openai", mocks["openai"]),
                                       [provider("anthropic", mocks["anthropic"], name="anth"),
                                        provider("ollama", mocks["ollama"], name="oll")],
                                       health={"interval": "200ms"}))
        for kind, m in mocks.items():
            st, ok = m.wait_stats(lambda s: s["requests"] >= 2, timeout=5)
            self.assertTrue(ok, "%s was not probed: %r" % (kind, st))
        want = {"openai": "/v1/models", "anthropic": "/v1/models", "ollama": "/api/tags"}
        for kind, m in mocks.items():
            last = m.last()
            self.assertEqual((last["method"], last["path"]), ("GET", want[kind]), last)
            self.assertIsNone(last["body"], last)
        self.assertEqual(mocks["openai"].last()["headers"].get("authorization"), "Bearer sk-test-openai-key")
        self.assertEqual(mocks["anthropic"].last()["headers"].get("x-api-key"), "sk-ant-test-key")
        r, doc = self.health(srv)
        for name in ("openai", "anth", "oll"):
            p = doc["providers"][name]
            self.assertGreaterEqual(p["checks"], 1, p)
            self.assertIn("latency_ms", p)
            self.assertEqual(p["status"], "up", p)
        self.assertNotIn("sk-test-openai-key", r.body.decode())

    def test_probes_never_overlap(self):
        a = self.start_mock()
        a.arm("hang", -1)
        srv = self.start_server(config(provider("openai", a),
                                       health={"interval": "200ms", "timeout": "1s", "failure_threshold": 100}))
        st, ok = a.wait_stats(lambda s: s["requests"] >= 1, timeout=5)
        self.assertTrue(ok, "no probe came: %r" % st)
        t0 = time.monotonic()
        max_active = 0
        while time.monotonic() - t0 < 2.6:
            st = a.stats()
            max_active = max(max_active, st["active"])
            time.sleep(0.02)
        n = st["requests"]
        self.assertLessEqual(max_active, 1, "probes overlapped (%d in flight)" % max_active)
        # interval 200 ms, a hung probe lasts 1 s: without the guard ~13
        self.assertLessEqual(n, 5, "%d probes in 2.6 s although each hangs for 1 s" % n)
        self.assertGreaterEqual(n, 2, "no new probe after the hung one timed out")
        r, doc = self.health(srv)
        p = doc["providers"]["openai"]
        self.assertGreaterEqual(p["checks"], 1, p)
        self.assertIn("timeout", p.get("last_error", ""), p)

    def test_sigterm_while_a_probe_hangs(self):
        a = self.start_mock()
        a.arm("hang", -1)
        srv = self.start_server(config(provider("openai", a),
                                       health={"interval": "200ms", "timeout": "30s"}))
        st, ok = a.wait_stats(lambda s: s["active"] >= 1, timeout=5)
        self.assertTrue(ok, "the probe did not reach the mock: %r" % st)
        t0 = time.monotonic()
        srv.signal(15)
        rc = srv.wait_exit(8)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit status %r after SIGTERM with a hung probe" % rc)
        self.assertLess(took, 3.0, "a hung probe held up shutdown for %.1fs" % took)
        st, ok = a.wait_stats(lambda s: s["active"] == 0, timeout=5)
        self.assertTrue(ok, "the probe's connection outlived hapax: %r" % st)

    def test_unusable_provider_is_reported_not_probed(self):
        a = self.start_mock()
        srv = self.start_server(config(provider("openai", a),
                                       [provider("anthropic", endpoint="", key="", name="nokey")],
                                       health={"interval": "200ms"}))
        r, doc = self.health(srv)
        p = doc["providers"]["nokey"]
        self.assertEqual(p["status"], "unusable", p)
        self.assertIn("ANTHROPIC_API_KEY", p.get("last_error", ""), p)
        self.assertEqual(srv.get("/health/providers/nokey").status, 503)
        time.sleep(0.6)
        self.assertEqual(self.health(srv)[1]["providers"]["nokey"]["checks"], 0)


# ---------------------------------------------------------------------------
# chaos

CHAOS_FAULTS = [  # (mode, weight)
    ("none", 30), ("500", 6), ("502", 4), ("503", 4), ("429", 5), ("reset", 6),
    ("malformed-json", 4), ("malformed-sse", 4), ("close", 4), ("hang", 2), ("slow", 5), ("400", 1),
]


class ChaosTest(ResilienceCase):

    TOTAL = 2000
    CONCURRENCY = 200
    REQUEST_TIMEOUT = 4.0

    def armer(self, mocks, seed, stop):
        """Keeps re-arming each mock with a random fault for a random number
        of requests until `stop` is set."""
        rng = random.Random(seed)
        modes = [m for m, _ in CHAOS_FAULTS]
        weights = [w for _, w in CHAOS_FAULTS]
        while not stop.is_set():
            for m, calm in mocks:
                mode = "none" if rng.random() < calm else rng.choices(modes, weights)[0]
                try:
                    m.arm(mode, rng.randint(1, 25), delay_ms=rng.choice((5, 20, 60)),
                          retry_after=rng.choice((0, 0, 1)))
                except Exception:  # noqa: BLE001 - a busy mock: try again
                    pass
            stop.wait(rng.uniform(0.005, 0.03))

    def check(self, i, kind, resp, took, names):
        """'ok', 'error' or 'stream_error'; raises AssertionError on anything else."""
        said = "chaos request %d" % i
        if took > self.REQUEST_TIMEOUT + 6:
            raise AssertionError("answered after %.1fs (request_timeout %.0fs)" % (took, self.REQUEST_TIMEOUT))
        if resp.status >= 400:
            ctype = (resp.header("Content-Type") or "").split(";")[0].strip()
            assert ctype == "application/json", "error Content-Type %r" % ctype
            err = resp.json()["error"]
            for k in ("type", "message", "request_id"):
                assert isinstance(err.get(k), str) and err[k], "error.%s missing: %r" % (k, resp)
            assert err["request_id"] == resp.header("X-Request-ID"), resp
            return "error:%d %s" % (resp.status, err.get("code"))
        assert resp.status == 200, "status %d" % resp.status
        prov = resp.header("X-Hapax-Provider")
        assert prov in names, "X-Hapax-Provider %r" % prov
        want = expected_text(names[prov], said)
        if kind == "json":
            doc = resp.json()
            got = doc["choices"][0]["message"]["content"]
            assert got == want, "content %r != %r" % (got, want)
            return "ok"
        events = sse_events(resp.body)
        datas = [d for _, d in events]
        assert datas, "empty stream"
        if datas[-1] == "[DONE]":
            assert datas.count("[DONE]") == 1, "two [DONE]"
            text = ""
            for d in datas[:-1]:
                c = json.loads(d)
                assert "error" not in c, "error event before [DONE]"
                if c.get("choices"):
                    text += c["choices"][0]["delta"].get("content") or ""
            assert text == want, "streamed %r != %r" % (text, want)
            return "ok"
        last = json.loads(datas[-1])
        assert "error" in last and last["error"].get("message"), "stream ends without [DONE] or error: %r" \
            % datas[-1][:200]
        assert "[DONE]" not in datas, "[DONE] before an error"
        text = ""
        for d in datas[:-1]:
            c = json.loads(d)
            assert "error" not in c, "two error events"
            if c.get("choices"):
                text += c["choices"][0]["delta"].get("content") or ""
        assert want.startswith(text), "partial stream %r is not a prefix of %r" % (text, want)
        return "stream_error"

    def one(self, port, i, stream, headers=()):
        body = chat_body("chaos request %d" % i, stream)
        t0 = time.monotonic()
        c = RawConn(port, timeout=self.REQUEST_TIMEOUT + 8)
        try:
            c.send(build_request("POST", "/v1/chat/completions",
                                 [("Content-Type", "application/json"), ("Connection", "close")] + list(headers),
                                 body))
            resp = c.read_response("POST", timeout=self.REQUEST_TIMEOUT + 8)
            # exactly one response: nothing follows it before the close
            closed = c.wait_closed(5)
            assert closed, "connection not closed after the response (Connection: close)"
            assert not c.buf, "bytes after the response: %r" % bytes(c.buf[:200])
        finally:
            c.close()
        return resp, time.monotonic() - t0

    def run_chaos(self, seed, extra=None, headers=()):
        # streams take 8 x the chunk delay, so ~200 requests stay in flight
        m_oai = self.start_mock(name="chaos_openai", args=["--chunk-delay-ms", "20"])
        m_anth = self.start_mock(name="chaos_anthropic", args=["--chunk-delay-ms", "20"])
        m_oll = self.start_mock(name="chaos_ollama", args=["--chunk-delay-ms", "10"])
        names = {"openai": "openai", "anth": "anthropic", "oll": "ollama"}
        srv = self.start_server(deep_merge(config(
            provider("openai", m_oai),
            [provider("anthropic", m_anth, name="anth"), provider("ollama", m_oll, name="oll")],
            retry={"max_retries": 2, "initial_delay": "20ms", "max_delay": "100ms", "budget_percent": 20},
            breaker={"failure_threshold": 8, "timeout": "300ms", "interval": "2s", "max_requests": 2},
            health={"interval": "300ms", "timeout": "500ms", "failure_threshold": 3},
            connect_timeout="1s", first_byte_timeout="800ms", request_timeout="4s"), extra or {}))
        stop = threading.Event()
        armer = threading.Thread(target=self.armer, daemon=True,
                                 args=([(m_oai, 0.0), (m_anth, 0.3), (m_oll, 0.85)], seed, stop))
        armer.start()
        rng = random.Random(seed + 1)
        plan = [rng.random() < 0.5 for _ in range(self.TOTAL)]  # stream?
        lock = threading.Lock()
        next_i = [0]
        outcome = {"ok": 0, "stream_error": 0}
        problems = []
        slowest = [0.0]

        def worker():
            pace = random.Random(threading.get_ident())
            while True:
                time.sleep(pace.uniform(0, 0.15))
                with lock:
                    i = next_i[0]
                    if i >= self.TOTAL:
                        return
                    next_i[0] += 1
                stream = plan[i]
                try:
                    resp, took = self.one(srv.port, i, stream, headers)
                    slowest[0] = max(slowest[0], took)
                    kind = self.check(i, "sse" if stream else "json", resp, took, names)
                except (AssertionError, ValueError, KeyError, TypeError, IndexError, ConnectionClosed,
                        TimeoutError, OSError, socket.timeout) as e:
                    with lock:
                        problems.append("request %d (stream=%s): %s: %s" % (i, stream, type(e).__name__, e))
                    continue
                with lock:
                    outcome[kind] = outcome.get(kind, 0) + 1

        t0 = time.monotonic()
        workers = [threading.Thread(target=worker, daemon=True) for _ in range(self.CONCURRENCY)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(max(1.0, 90 - (time.monotonic() - t0)))
        stop.set()
        armer.join(5)
        hung = sum(1 for w in workers if w.is_alive())
        self.assertEqual(hung, 0, "%d client threads still waiting after 90 s" % hung)
        self.assertEqual(problems, [], "%d of %d requests got no proper answer; first ones:\n%s"
                         % (len(problems), self.TOTAL, "\n".join(problems[:15])))
        self.assertEqual(sum(outcome.values()), self.TOTAL, outcome)
        self.assertGreater(outcome["ok"], self.TOTAL // 10, "too few requests served: %r" % outcome)
        self.assertLess(outcome["ok"], self.TOTAL, "the chaos caused no failure: %r" % outcome)

        # Afterwards: no upstream call left behind, /health answers, and
        # with the faults gone the gateway recovers.
        for m in (m_oai, m_anth, m_oll):
            m.arm("none", 0)
        for m in (m_oai, m_anth, m_oll):
            st, ok = m.wait_stats(lambda s: s["active"] == 0, timeout=5)
            self.assertTrue(ok, "%s still has upstream calls in flight: %r" % (m.name, st))
        r, doc = self.health(srv)
        self.assertIn(r.status, (200, 503), r)
        self.assertIn(doc["status"], ("ok", "degraded", "unavailable"), doc)
        deadline = time.monotonic() + 10
        while True:
            r, _ = self.chat(srv, headers=dict(headers))
            if r.status == 200:
                break
            self.assertLess(time.monotonic(), deadline, "no recovery after the chaos: %r" % r)
            time.sleep(0.1)
        self.assertServed(r, r.header("X-Hapax-Provider"))
        return outcome, time.monotonic() - t0, slowest[0]

    def test_chaos_mixed_faults_every_request_answered(self):
        outcome, took, slowest = self.run_chaos(seed=20240611)
        print("\n  chaos: %r in %.1fs, slowest answer %.2fs" % (outcome, took, slowest), end=" ")

    def test_chaos_through_the_whole_middleware_chain(self):
        """The same chaos with two workers and every middleware on: the
        queue admits across workers (24 slots, 3 s waits), keys are
        checked, buckets are taken, CORS headers are added. Every request
        still gets exactly one proper answer (queue rejections are proper
        JSON 503s) and nothing leaks under ASan."""
        key = secret("hx-chaos-client-key-5e1f")
        extra = {"server": {"workers": 2},
                 "queue": {"enabled": True, "max_concurrent": 24, "initial_size": 120, "max_wait": "3s"},
                 "auth": {"enabled": True, "keys": [{"name": "chaos", "key": key}]},
                 "rate_limit": {"enabled": True, "requests_per_minute": 1000000, "burst": 100000},
                 "cors": {"enabled": True, "allow_origins": ["https://app.example"]}}
        outcome, took, slowest = self.run_chaos(seed=20261127, extra=extra,
                                                headers=[("Authorization", "Bearer " + key),
                                                         ("Origin", "https://app.example")])
        print("\n  chaos+chain: %r in %.1fs, slowest answer %.2fs" % (outcome, took, slowest), end=" ")
