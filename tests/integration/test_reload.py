"""Configuration reload (SIGHUP and file changes) and load shedding
(server.health_check), end to end against the real binary.

Reload: a valid file applies to new requests without dropping connections
or in-flight requests; an invalid one is logged and the running config
kept; replacing the file by rename (editors, Kubernetes ConfigMaps) is
noticed; provider changes (endpoint, key) apply; breaker state carries
over. Load shedding: a threshold that is always exceeded sheds completion
requests with 503 overloaded + Retry-After and /health says so; a reload
that lifts the threshold brings the gateway back.
"""

import json
import os
import re
import signal
import threading
import time

from harness import HapaxTestCase, base_config, deep_merge, render_yaml, secret
from test_providers import expected_text, provider, user

REQ_TIMEOUT = 15.0


def chat(said="hello there"):
    return json.dumps({"messages": [user(said)]})


class ReloadTestCase(HapaxTestCase):
    def write_config(self, srv, overrides, path=None, atomic=False):
        text = render_yaml(deep_merge(base_config(srv.port), overrides)) + "\n"
        path = path or srv.config_path
        if atomic:
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.rename(tmp, path)
        else:
            with open(path, "w") as f:
                f.write(text)

    def post_chat(self, srv, said="hello there", headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return srv.request("POST", "/v1/chat/completions", headers=h, body=chat(said), timeout=REQ_TIMEOUT)

    def reloads(self, srv, result):
        return [r for r in srv.logs()[0] if r.get("event") == "config_reload" and r.get("result") == result]

    def wait_reloads(self, srv, result, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.reloads(srv, result)) >= n:
                return
            time.sleep(0.05)
        self.fail("expected %d config_reload %s lines; log:\n%s" % (n, result, srv.stderr_text()[-3000:]))

    def llm_cfg(self, mock, **kw):
        p = provider("openai", mock)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False}})
        p.update(kw)
        return {"llm": p}


class TestReload(ReloadTestCase):
    def test_sighup_applies_a_new_middleware_chain(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        srv = self.start_server(cfg)
        self.assertIsNotNone(srv.get("/health").header("X-Response-Time"))
        cfg2 = dict(cfg, server={"middleware": ["request_id", "panic_recovery", "logging"]})
        self.write_config(srv, cfg2)
        # The file watcher may reload first; SIGHUP reloads in any case.
        srv.signal(signal.SIGHUP)
        self.wait_reloads(srv, "success", 1)
        deadline = time.monotonic() + 5
        while srv.get("/health").header("X-Response-Time") is not None:
            self.assertLess(time.monotonic(), deadline, "the new chain never applied")
            time.sleep(0.05)
        self.assertIsNotNone(srv.get("/health").header("X-Request-ID"))
        self.assertTrue(any(r.get("trigger") in ("signal", "file") for r in self.reloads(srv, "success")))

    def test_invalid_file_keeps_the_running_config(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        srv = self.start_server(cfg)
        with open(srv.config_path, "a") as f:
            f.write("bogus_key: 1\n")
        srv.signal(signal.SIGHUP)
        self.wait_reloads(srv, "failure", 1)
        fail = self.reloads(srv, "failure")[0]
        self.assertIn("bogus_key", fail.get("error", ""))
        r = self.post_chat(srv)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], expected_text("openai", "hello there"))
        self.assertTrue(srv.alive())

    def test_file_replaced_by_rename_is_noticed(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        srv = self.start_server(cfg)
        self.write_config(srv, dict(cfg, cors={"enabled": True, "allow_origins": ["https://app.example"]}),
                          atomic=True)
        self.wait_reloads(srv, "success", 1)
        self.assertEqual(self.reloads(srv, "success")[0].get("trigger"), "file")
        deadline = time.monotonic() + 5
        while True:
            r = srv.get("/health", headers={"Origin": "https://app.example"})
            if r.header("Access-Control-Allow-Origin") == "https://app.example":
                break
            self.assertLess(time.monotonic(), deadline, "CORS from the renamed file never applied")
            time.sleep(0.05)

    def test_provider_change_applies_and_in_flight_request_finishes(self):
        old = self.start_mock(name="old")
        new = self.start_mock(name="new")
        cfg = self.llm_cfg(old, endpoint=old.endpoint("openai", "slow"))
        srv = self.start_server(cfg)
        # A slow streamed answer (8 chunks, 200 ms apart) is in flight on
        # the old provider...
        conn = srv.conn(timeout=REQ_TIMEOUT)
        body = json.dumps({"messages": [user("slow one")], "stream": True})
        conn.send(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        head = conn.read_head(timeout=REQ_TIMEOUT)
        self.assertEqual(head.status, 200)
        # ...while the config moves to the new provider with another key.
        cfg2 = self.llm_cfg(new, api_key="sk-rotated-key")
        self.write_config(srv, cfg2)
        srv.signal(signal.SIGHUP)
        self.wait_reloads(srv, "success", 1)
        self.assertNotIn(b"[DONE]", conn.buf, "the stream ended before the reload: the test proves nothing")
        conn.read_until(b"data: [DONE]", timeout=REQ_TIMEOUT)
        text = ""
        for m in re.findall(rb"data: (\{.*\})\n", bytes(conn.buf)):
            ev = json.loads(m)
            if ev.get("choices"):
                text += ev["choices"][0].get("delta", {}).get("content") or ""
        self.assertEqual(text, expected_text("openai", "slow one"))
        r = self.post_chat(srv, "after reload")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(new.last()["headers"].get("authorization"), "Bearer sk-rotated-key")
        self.assertEqual(old.stats()["requests"], 1)

    def test_breaker_state_survives_a_reload(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock, endpoint=mock.endpoint("openai", "500"))
        cfg["circuit_breaker"] = {"failure_threshold": 1, "min_requests": 1, "timeout": "60s", "max_requests": 1}
        cfg["llm"]["panic"] = False  # the open breaker's 503 is the point here
        srv = self.start_server(cfg)
        r = self.post_chat(srv)
        self.assertGreaterEqual(r.status, 500)
        h = srv.get("/health").json()
        self.assertEqual(h["providers"]["openai"]["breaker"], "open")
        cfg2 = dict(cfg, logging={"level": "debug"})
        self.write_config(srv, cfg2)
        srv.signal(signal.SIGHUP)
        self.wait_reloads(srv, "success", 1)
        time.sleep(0.2)
        h = srv.get("/health").json()
        self.assertEqual(h["providers"]["openai"]["breaker"], "open", h)
        before = mock.stats()["requests"]
        r = self.post_chat(srv)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(mock.stats()["requests"], before, "an open breaker must not reach the provider")

    def test_probes_follow_a_reload_without_traffic(self):
        """Turning provider health checks on by reload starts the probes at
        once, even when no request arrives to carry the new config."""
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        srv = self.start_server(cfg)
        time.sleep(0.5)
        self.assertEqual(mock.stats()["requests"], 0)
        cfg2 = self.llm_cfg(mock, health_check={"enabled": True, "interval": "200ms", "timeout": "1s",
                                                "failure_threshold": 2})
        self.write_config(srv, cfg2)
        srv.signal(signal.SIGHUP)
        self.wait_reloads(srv, "success", 1)
        st, ok = mock.wait_stats(lambda s: s["requests"] >= 2, timeout=5)
        self.assertTrue(ok, "no probe after the reload: %r" % st)
        self.assertEqual((mock.last()["method"], mock.last()["path"]), ("GET", "/v1/models"))

    def test_reload_keeps_open_connections(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        srv = self.start_server(cfg)
        conn = srv.conn()
        r = conn.request("GET", "/health")
        self.assertEqual(r.status, 200)
        for i in range(3):
            srv.signal(signal.SIGHUP)
            self.wait_reloads(srv, "success", i + 1)
            r = conn.request("GET", "/health")
            self.assertEqual(r.status, 200)


class TestLoadShedding(ReloadTestCase):
    def shed_cfg(self, mock, memory="0.01%"):
        cfg = self.llm_cfg(mock)
        # Only memory is checked: on a loaded machine the CPU sample alone
        # would keep the gateway shedding after the memory limit is lifted.
        cfg["server"] = {"health_check": {"enabled": True, "interval": "100ms", "timeout": "1s",
                                          "threshold": 2, "memory_threshold": memory,
                                          "checks": {"memory": "system"}}}
        return cfg

    def test_overloaded_gateway_sheds_completions_and_recovers(self):
        mock = self.start_mock()
        cfg = self.shed_cfg(mock)
        srv = self.start_server(cfg, wait_ready=False)
        deadline = time.monotonic() + 10
        while True:
            try:
                h = srv.get("/health")
                if h.status == 503 and h.json().get("status") == "overloaded":
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "never started shedding")
            time.sleep(0.05)
        self.assertTrue(h.json()["system"]["shedding"])
        self.assertEqual(h.json()["system"]["reason"], "memory")
        self.assertGreater(h.json()["system"]["memory_percent"], 0.01)
        before = mock.stats()["requests"]
        r = self.post_chat(srv)
        self.assertEqual(r.status, 503, r)
        err = r.json()["error"]
        self.assertEqual(err["code"], "overloaded")
        self.assertIn("memory", err["message"])
        self.assertTrue(err["request_id"])
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        self.assertEqual(mock.stats()["requests"], before, "a shed request must not reach a provider")
        self.assertTrue(any(x.get("event") == "load_shed_start" for x in srv.logs()[0]))
        # Lift the threshold: the next sample under it stops shedding.
        self.write_config(srv, self.shed_cfg(mock, memory="100%"))
        srv.signal(signal.SIGHUP)
        self.wait_reloads(srv, "success", 1)
        deadline = time.monotonic() + 10
        while self.post_chat(srv).status != 200:
            self.assertLess(time.monotonic(), deadline, "never recovered")
            time.sleep(0.05)
        self.assertEqual(srv.get("/health").status, 200)
        self.assertTrue(any(x.get("event") == "load_shed_stop" for x in srv.logs()[0]))

    def test_health_reports_samples_when_under_thresholds(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        # A threshold of 1000 samples: a busy test machine never sheds here.
        cfg["server"] = {"health_check": {"enabled": True, "interval": "100ms", "threshold": 1000,
                                          "checks": {"cpu": "system", "disk": "system"}}}
        srv = self.start_server(cfg)
        self.assertEqual(self.post_chat(srv).status, 200)
        deadline = time.monotonic() + 5
        while True:
            h = srv.get("/health").json()
            sysb = h["system"]
            if "cpu_percent" in sysb and "disk_percent" in sysb:
                break
            self.assertLess(time.monotonic(), deadline, "no samples: %s" % h)
            time.sleep(0.05)
        self.assertFalse(sysb["shedding"])
        # `checks` picks cpu and disk: memory and latency are not sampled.
        self.assertNotIn("memory_percent", sysb)
        self.assertNotIn("latency_ms", sysb)
        self.assertEqual(h["status"], "ok")

    def wait_shedding(self, srv, reason, timeout=10.0):
        deadline = time.monotonic() + timeout
        body = None
        while True:
            try:
                body = srv.get("/health").json()
                if body.get("system", {}).get("shedding") and body["system"].get("reason") == reason:
                    return body
            except OSError:
                pass  # not listening yet
            self.assertLess(time.monotonic(), deadline, "never shed for %s: %s" % (reason, body))
            time.sleep(0.05)

    def one_check_cfg(self, mock, check, threshold_key, value, **llm_kw):
        cfg = self.llm_cfg(mock, **llm_kw)
        cfg["server"] = {"health_check": {"enabled": True, "interval": "100ms", "threshold": 1,
                                          "checks": {check: "system"}, threshold_key: value}}
        return cfg

    def test_disk_threshold_sheds(self):
        mock = self.start_mock()
        srv = self.start_server(self.one_check_cfg(mock, "disk", "disk_threshold", "0.0001%"), wait_ready=False)
        body = self.wait_shedding(srv, "disk")
        self.assertGreater(body["system"]["disk_percent"], 0)
        r = self.post_chat(srv)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["error"]["code"], "overloaded")

    def test_cpu_threshold_sheds(self):
        mock = self.start_mock()
        srv = self.start_server(self.one_check_cfg(mock, "cpu", "cpu_threshold", "0.0001%"), wait_ready=False)
        self.wait_shedding(srv, "cpu")
        self.assertEqual(self.post_chat(srv).status, 503)

    def test_latency_threshold_sheds_then_recovers_without_traffic(self):
        """Slow LLM answers push the mean time to headers over 1 ms: the
        gateway sheds; an interval with no LLM request is no evidence, so
        shedding stops on the next sample."""
        mock = self.start_mock(args=["--chunks", "2"])
        cfg = self.one_check_cfg(mock, "latency", "latency_threshold", "1ms",
                                 endpoint=mock.endpoint("openai", "slow"))
        cfg["server"]["health_check"]["interval"] = "300ms"
        srv = self.start_server(cfg)
        self.assertEqual(self.post_chat(srv).status, 200)
        self.wait_shedding(srv, "latency")
        deadline = time.monotonic() + 10
        while srv.get("/health").json()["system"]["shedding"]:
            self.assertLess(time.monotonic(), deadline, "shedding never stopped")
            time.sleep(0.05)
        self.assertTrue(any(x.get("event") == "load_shed_stop" for x in srv.logs()[0]))


class TestRoutesAndClients(ReloadTestCase):
    def test_provider_health_at_a_versioned_path(self):
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        cfg["routes"] = [{"path": "/v1/chat/completions", "handler": "chat"},
                         {"path": "/health", "handler": "health"},
                         {"path": "/health/providers/{name}", "handler": "provider_health", "version": "v2"}]
        srv = self.start_server(cfg)
        r = srv.get("/v2/health/providers/openai")
        self.assertEqual(r.status, 200, r)
        self.assertIn("openai", r.json())
        self.assertEqual(srv.get("/health/providers/openai").status, 404)

    def test_auth_logs_the_client_behind_a_trusted_proxy(self):
        """With auth on and rate limiting off, the access log and the
        auth_failure line still name the X-Forwarded-For client."""
        mock = self.start_mock()
        cfg = self.llm_cfg(mock)
        key = secret("hx-proxy-client-key-88aa")
        cfg["auth"] = {"enabled": True, "keys": [{"name": "app", "key": key}]}
        cfg["rate_limit"] = {"trusted_proxies": ["127.0.0.1"]}
        srv = self.start_server(cfg)
        xff = {"X-Forwarded-For": "203.0.113.9"}
        self.assertEqual(self.post_chat(srv, headers=dict(xff, Authorization="Bearer " + key)).status, 200)
        self.assertEqual(self.post_chat(srv, headers=xff).status, 401)
        recs = srv.logs()[0]
        ok = [x for x in recs if x.get("msg") == "request" and x.get("path") == "/v1/chat/completions"
              and x.get("status") == 200]
        fail = srv.wait_log(lambda x: x.get("event") == "auth_failure")
        self.assertEqual(ok[0]["client_ip"], "203.0.113.9", ok)
        self.assertIsNotNone(fail, recs)
        self.assertEqual(fail["client_ip"], "203.0.113.9", fail)
