"""Per-route health checks (routes[].health_check, src/gateway/route_health.h)
against the mock provider: a route turns unhealthy after `threshold` failed
rounds and healthy after one good one, GET <path>/health answers 200
{"status":"healthy"} / 503 {"status":"unhealthy"}, /health lists the routes
and /metrics has hapax_route_healthy. Check types: http (the providers'
model lists, never a generation), tcp (a connect to the endpoints) and a
latency bound. Reload and shutdown stop the probes.

Every wait is bounded; no test asserts a latency target (the latency case
uses a mock delay eight times above the bound).
"""

import re
import signal
import socket
import time

from harness import HapaxTestCase, free_port, render_yaml, deep_merge, base_config
from test_providers import provider

ROUTE = "/v1/chat/completions"
WAIT = 15.0


def config(prov, checks=None, threshold=3, interval="300ms", timeout="2s", enabled=True, extra=None):
    llm = dict(prov)
    llm.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False}})
    hc = {"enabled": enabled, "interval": interval, "timeout": timeout, "threshold": threshold}
    if checks is not None:
        hc["checks"] = checks
    cfg = {
        "llm": llm,
        "routes": [
            {"path": ROUTE, "handler": "chat", "methods": ["POST"], "health_check": hc},
            {"path": "/health", "handler": "health", "methods": ["GET"]},
            {"path": "/metrics", "handler": "metrics", "methods": ["GET"]},
        ],
    }
    return deep_merge(cfg, extra or {})


class RouteHealthCase(HapaxTestCase):

    def route_state(self, srv):
        r = srv.get("/health")
        return r.json().get("routes", {}).get(ROUTE)

    def wait_route(self, srv, pred, what):
        deadline = time.monotonic() + WAIT
        seen = []
        while time.monotonic() < deadline:
            st = self.route_state(srv)
            seen.append(st)
            if st is not None and pred(st):
                return st, seen
            time.sleep(0.02)
        self.fail("route never %s; last states: %r" % (what, seen[-3:]))

    def assertRouteHealth(self, srv, healthy):
        r = srv.get(ROUTE + "/health")
        self.assertEqual(r.status, 200 if healthy else 503, r)
        self.assertEqual(r.body, b'{"status":"%s"}\n' % (b"healthy" if healthy else b"unhealthy"), r)
        self.assertEqual(r.header("Content-Type"), "application/json", r)


class TestRouteHealth(RouteHealthCase):

    def test_unhealthy_after_threshold_failures_and_back_after_one_success(self):
        mock = self.start_mock()
        srv = self.start_server(config(provider("openai", mock), checks={"api": "http"}, threshold=3))
        self.wait_route(srv, lambda s: s["checks"] >= 1, "checked")
        self.assertRouteHealth(srv, True)
        # Probes read the model list: nothing is generated, nothing billed.
        last = mock.last()
        self.assertEqual((last["method"], last["path"]), ("GET", "/v1/models"), last)
        mock.arm("500", count=-1)
        # Still healthy after one and two failures, unhealthy at three.
        st, seen = self.wait_route(srv, lambda s: s["status"] == "unhealthy", "unhealthy")
        self.assertGreaterEqual(st["consecutive_failures"], 3, st)
        self.assertIn("http", st["last_error"], st)
        self.assertTrue(any(s and s["status"] == "healthy" and s["consecutive_failures"] in (1, 2) for s in seen),
                        seen)
        self.assertRouteHealth(srv, False)
        h = srv.get("/health")
        self.assertEqual(h.status, 200, h)  # the provider itself still serves
        self.assertEqual(h.json()["status"], "degraded", h)
        mock.arm("none", count=0)
        st, _ = self.wait_route(srv, lambda s: s["status"] == "healthy", "healthy again")
        self.assertEqual(st["consecutive_failures"], 0, st)
        self.assertRouteHealth(srv, True)
        self.assertEqual(srv.get("/health").json()["status"], "ok")

    def test_unreachable_provider_turns_the_route_unhealthy(self):
        port = free_port()
        prov = provider("openai", endpoint="http://127.0.0.1:%d/v1" % port)
        srv = self.start_server(config(prov, threshold=2))
        st, _ = self.wait_route(srv, lambda s: s["status"] == "unhealthy", "unhealthy")
        self.assertGreaterEqual(st["consecutive_failures"], 2, st)
        self.assertRouteHealth(srv, False)

    def test_tcp_check_connects_without_speaking_http(self):
        # A listener that accepts and never answers: tcp passes, http cannot.
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(64)
        self.addCleanup(lsock.close)
        port = lsock.getsockname()[1]
        prov = provider("openai", endpoint="http://127.0.0.1:%d/v1" % port)
        srv = self.start_server(config(prov, checks={"conn": "tcp"}, threshold=1, timeout="500ms"),
                                name="tcp")
        st, _ = self.wait_route(srv, lambda s: s["checks"] >= 2, "checked twice")
        self.assertEqual(st["status"], "healthy", st)
        self.assertRouteHealth(srv, True)
        srv2 = self.start_server(config(prov, checks={"api": "http"}, threshold=1, timeout="500ms"),
                                 name="http")
        st, _ = self.wait_route(srv2, lambda s: s["status"] == "unhealthy", "unhealthy over http")
        self.assertIn("http", st["last_error"], st)

    def test_tcp_check_against_the_mock_fault_modes(self):
        mock = self.start_mock()
        # A provider answering 500: its port accepts, so tcp is healthy.
        srv = self.start_server(config(provider("openai", mock, fault="500"), checks={"conn": "tcp"}, threshold=1))
        st, _ = self.wait_route(srv, lambda s: s["checks"] >= 2, "checked twice")
        self.assertEqual(st["status"], "healthy", st)
        # Nothing listening: tcp fails at once.
        port = free_port()
        srv2 = self.start_server(config(provider("openai", endpoint="http://127.0.0.1:%d/v1" % port),
                                        checks={"conn": "tcp"}, threshold=1), name="down")
        st, _ = self.wait_route(srv2, lambda s: s["status"] == "unhealthy", "unhealthy")
        self.assertIn("tcp", st["last_error"], st)
        self.assertRouteHealth(srv2, False)

    def test_latency_above_the_bound_is_a_failure(self):
        mock = self.start_mock()
        srv = self.start_server(config(provider("openai", mock), checks={"api": "http", "latency": "200ms"},
                                       threshold=1, timeout="10s"))
        st, _ = self.wait_route(srv, lambda s: s["checks"] >= 1, "checked")
        self.assertEqual(st["status"], "healthy", st)
        mock.arm("slow", count=-1, delay_ms=200)  # 8 chunks x 200 ms = 1.6 s per model list
        st, _ = self.wait_route(srv, lambda s: s["status"] == "unhealthy", "unhealthy when slow")
        self.assertIn("latency", st["last_error"], st)
        self.assertGreaterEqual(st["latency_ms"], 200, st)
        self.assertRouteHealth(srv, False)
        mock.arm("none", count=0)
        self.wait_route(srv, lambda s: s["status"] == "healthy", "healthy when fast")

    def test_latency_threshold_is_the_servers_latency_threshold(self):
        mock = self.start_mock()
        srv = self.start_server(config(provider("openai", mock), checks={"api": "http", "latency": "threshold"},
                                       threshold=1, timeout="10s",
                                       extra={"server": {"health_check": {"latency_threshold": "300ms"}}}))
        st, _ = self.wait_route(srv, lambda s: s["checks"] >= 1, "checked")
        self.assertEqual(st["status"], "healthy", st)
        mock.arm("slow", count=-1, delay_ms=200)
        st, _ = self.wait_route(srv, lambda s: s["status"] == "unhealthy", "unhealthy when slow")
        self.assertIn("above 300 ms", st["last_error"], st)

    def test_health_lists_routes_and_metrics_has_the_gauge(self):
        mock = self.start_mock()
        srv = self.start_server(config(provider("openai", mock), threshold=1))
        self.wait_route(srv, lambda s: s["checks"] >= 1, "checked")
        doc = srv.get("/health").json()
        self.assertEqual(list(doc["routes"]), [ROUTE], doc)
        self.assertEqual(doc["routes"][ROUTE]["status"], "healthy", doc)
        m = srv.get("/metrics").body.decode()
        self.assertIn('hapax_route_healthy{route="%s"} 1' % ROUTE, m)
        mock.arm("503", count=-1)
        self.wait_route(srv, lambda s: s["status"] == "unhealthy", "unhealthy")
        m = srv.get("/metrics").body.decode()
        self.assertIn('hapax_route_healthy{route="%s"} 0' % ROUTE, m)
        # Routes without a check have no <path>/health and no series.
        self.assertEqual(srv.get("/metrics/health").status, 404)
        self.assertEqual(len(re.findall(r"^hapax_route_healthy\{", m, re.M)), 1, m)

    def test_path_health_stays_public_like_health_with_auth_on(self):
        mock = self.start_mock()
        srv = self.start_server(config(provider("openai", mock), threshold=1,
                                       extra={"auth": {"enabled": True,
                                                       "keys": [{"name": "app", "key": "hx-test-app-key"}]}}))
        self.wait_route(srv, lambda s: s["checks"] >= 1, "checked")
        r = srv.request("POST", ROUTE, headers={"Content-Type": "application/json"}, body="{}")
        self.assertEqual(r.status, 401, r)
        self.assertRouteHealth(srv, True)

    def test_reload_follows_the_new_config(self):
        mock = self.start_mock()
        cfg = config(provider("openai", mock), threshold=1)
        srv = self.start_server(cfg)
        self.wait_route(srv, lambda s: s["checks"] >= 1, "checked")
        with open(srv.config_path, "w") as f:
            f.write(render_yaml(deep_merge(base_config(srv.port), config(provider("openai", mock), enabled=False)))
                    + "\n")
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while srv.get(ROUTE + "/health").status != 404:
            self.assertLess(time.monotonic(), deadline, "the reload never removed <path>/health")
            time.sleep(0.05)
        self.assertNotIn("routes", srv.get("/health").json())
        # No more probes: the model-list count stays put.
        mock.reset()
        time.sleep(1.0)
        self.assertEqual(mock.stats()["requests"], 0)

    def test_shutdown_while_a_route_probe_hangs(self):
        mock = self.start_mock()
        srv = self.start_server(config(provider("openai", mock), threshold=1, timeout="30s", interval="200ms"))
        mock.arm("hang", count=-1)
        _, ok = mock.wait_stats(lambda s: s["active"] >= 1)
        self.assertTrue(ok, "no probe reached the mock")
        rc = srv.stop()
        self.assertEqual(rc, 0, srv.stderr_text()[-2000:])
