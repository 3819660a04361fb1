"""Circuit breakers that count requests, not attempts, and health that one
bad request cannot flip (issue 11): the failure-rate window with
min_requests, one verdict per request however many retries it made,
passive health from unreachable providers only, and the panic rule (every
provider of a chain down: the least bad one is still tried).

Each test starts its own mocks and hapax; the mock's fault modes make the
upstream fail (tests/mock/README.md). No test asserts a latency.
"""

import copy
import json
import os
import time

from test_providers import provider
from test_resilience import ResilienceCase, config


def with_defaults(cfg, keep_health=False):
    """cfg with the shipped circuit_breaker, retry and (unless kept)
    health_check settings: the behaviour an operator gets untouched."""
    cfg = copy.deepcopy(cfg)
    cfg.pop("circuit_breaker", None)
    cfg["llm"].pop("retry", None)
    if not keep_health:
        cfg["llm"].pop("health_check", None)
    return cfg


class BreakerRequestsTest(ResilienceCase):

    def metric(self, srv, prefix):
        for line in srv.get("/metrics").body.decode().splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        return None

    def test_one_failing_request_does_not_stop_the_next(self):
        """Defaults: one request whose upstream keeps answering 500 is
        retried (several attempts) and fails; that is one failed request,
        far from min_requests, so the next, healthy request is served."""
        a = self.start_mock()
        srv = self.start_server(with_defaults(config(provider("openai", a))))
        a.arm("500", -1)
        r, _ = self.chat(srv)
        self.assertError(r, 502, "bad_gateway")
        self.assertGreaterEqual(self.requests(a), 3, "the request was not retried: proves nothing")
        a.arm("none", 0)
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")
        self.assertEqual(self.transitions(srv, "openai"), [], "one request opened the breaker")
        _, doc = self.health(srv)
        p = doc["providers"]["openai"]
        self.assertEqual(p["breaker"], "closed", p)
        self.assertEqual(p["window_requests"], 2, p)  # two requests, whatever their attempts
        self.assertEqual(p["window_failures"], 1, p)
        self.assertEqual(p["failure_rate"], 50, p)

    def test_two_failed_requests_do_not_mark_the_only_provider_unhealthy(self):
        """Defaults (health checks on, failure_threshold 2): two requests
        answered 500 are the breaker's evidence, not health's; the provider
        stays healthy and serves the third request."""
        a = self.start_mock()
        cfg = with_defaults(config(provider("openai", a)))
        cfg["circuit_breaker"] = {"failure_threshold": 100000}  # health alone is tested here
        srv = self.start_server(cfg)
        a.arm("500", -1)
        for _ in range(2):
            r, _ = self.chat(srv)
            self.assertError(r, 502, "bad_gateway")
        _, doc = self.health(srv)
        p = doc["providers"]["openai"]
        self.assertIs(p["healthy"], True, p)
        self.assertNotEqual(p["status"], "down", p)
        self.assertEqual(self.log_events(srv, "provider_health"), [])
        a.arm("none", 0)
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")

    def test_failure_rate_opens_and_a_half_open_trial_closes(self):
        """2 failed requests out of 4 (min_requests 4, failure_rate 50 %)
        open the breaker, though never two failed in a row; after the
        timeout one trial request closes it."""
        a, b = self.start_mock(), self.start_mock()
        br = {"failure_threshold": 2, "min_requests": 4, "failure_rate": 50, "interval": "30s",
              "timeout": "1s", "max_requests": 1}
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 0}, breaker=br))
        for i, fault in enumerate(("none", "500", "none")):
            a.arm(fault, 1)
            r, _ = self.chat(srv)
            self.assertServed(r, "openai" if fault == "none" else "backup")
        _, doc = self.health(srv)
        p = doc["providers"]["openai"]
        self.assertEqual((p["window_requests"], p["window_failures"], p["failure_rate"]), (3, 1, 33), p)
        self.assertEqual(self.transitions(srv, "openai"), [])
        a.arm("500", 1)
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=2)
        self.wait_transition(srv, "openai", "closed", "open")
        n = self.requests(a)
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=1)
        self.assertEqual(self.requests(a), n, "an open breaker let a request through")
        time.sleep(1.2)  # the breaker's timeout
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")
        self.wait_transition(srv, "openai", "half_open", "closed")
        _, doc = self.health(srv)
        self.assertEqual(doc["providers"]["openai"]["breaker"], "closed", doc)

    def both_open(self, panic=True):
        """openai's breaker opens first, backup's a little later: both
        down, openai's trial comes sooner (the least bad)."""
        a, b = self.start_mock(), self.start_mock()
        br = {"failure_threshold": 1, "min_requests": 1, "failure_rate": 50, "timeout": "30s"}
        srv = self.start_server(config(provider("openai", a), [provider("ollama", b, name="backup")],
                                       retry={"max_retries": 0}, breaker=br, panic=panic))
        a.arm("500", 1)
        r, _ = self.chat(srv)
        self.assertServed(r, "backup", attempts=2)
        self.wait_transition(srv, "openai", "closed", "open")
        time.sleep(0.3)
        b.arm("500", 1)
        r, _ = self.chat(srv)
        self.assertError(r, 502, "bad_gateway")
        self.wait_transition(srv, "backup", "closed", "open")
        return a, b, srv

    def test_every_provider_down_the_least_bad_is_still_tried(self):
        a, b, srv = self.both_open()
        na, nb = self.requests(a), self.requests(b)
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1, family="openai")
        self.assertEqual((self.requests(a), self.requests(b)), (na + 1, nb))
        rec = srv.wait_log(lambda x: "panic" in str(x.get("failures", "")), timeout=3)
        self.assertIsNotNone(rec, "the access log does not say panic")
        r, _ = self.chat(srv)
        self.assertServed(r, "openai", attempts=1)
        self.assertEqual(len(self.log_events(srv, "panic")), 1, "panic is logged once per transition")
        self.assertEqual(self.metric(srv, 'hapax_panic_requests_total{provider="openai"}'), 2)

    def test_panic_off_fails_fast(self):
        a, b, srv = self.both_open(panic=False)
        na = self.requests(a)
        r, _ = self.chat(srv)
        err = self.assertError(r, 503, "service_unavailable")
        self.assertIn("circuit breaker open", err["message"])
        self.assertEqual(self.requests(a), na)

    def test_window_survives_a_restart(self):
        """The state file keeps the breaker's window: two failed requests
        before a kill -9 and one after make the three that open it."""
        a, b = self.start_mock(), self.start_mock()
        state_dir = os.path.join(self.workdir, "state")
        br = {"failure_threshold": 3, "min_requests": 3, "failure_rate": 100, "timeout": "60s"}
        cfg = config(provider("openai", a), [provider("ollama", b, name="backup")],
                     retry={"max_retries": 0}, breaker=br)
        cfg["queue"] = {"state_path": state_dir, "save_interval": "100ms"}
        srv = self.start_server(cfg, name="first")
        a.arm("500", 2)
        for _ in range(2):
            self.assertServed(self.chat(srv)[0], "backup", attempts=2)
        path = os.path.join(state_dir, "hapax-state.json")
        deadline = time.monotonic() + 5
        while True:
            try:
                with open(path) as f:
                    saved = json.load(f)["providers"]["providers"]["openai"]["breaker"]
                if saved.get("window_failures") == 2:
                    break
            except (OSError, ValueError, KeyError):
                pass
            self.assertLess(time.monotonic(), deadline, "the window never reached the state file")
            time.sleep(0.05)
        self.assertEqual((saved["state"], saved["window_requests"]), ("closed", 2), saved)
        srv.kill()
        srv.expected_exit = None
        srv2 = self.start_server(cfg, name="second")
        _, doc = self.health(srv2)
        p = doc["providers"]["openai"]
        self.assertEqual((p["window_requests"], p["window_failures"]), (2, 2), p)
        a.arm("500", 1)
        self.assertServed(self.chat(srv2)[0], "backup", attempts=2)
        self.wait_transition(srv2, "openai", "closed", "open")
