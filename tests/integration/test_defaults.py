"""Secure defaults and a fresh machine (issue 9): loopback host by default,
server.allow_unauthenticated, /metrics loopback-only while auth is off,
one hapax per port, /health "unknown" before any check and unreachable
providers named with what to set or start, --host/--port and
HAPAX_HOST/HAPAX_PORT overrides."""

import json
import os
import signal
import socket
import time

from harness import (EXIT_TIMEOUT, HOST, REPO_ROOT, HapaxServer, HapaxTestCase, base_config, deep_merge,
                     free_port, render_yaml, secret)
from test_providers import provider, user

REQ_TIMEOUT = 20.0


def chat(said):
    return json.dumps({"messages": [user(said)]}).encode()


def yaml_of(port, over=None):
    return render_yaml(deep_merge(base_config(port), over or {})) + "\n"


def closed_port():
    """A port nothing listens on (bound and closed a moment ago)."""
    return free_port()


class DefaultsTestCase(HapaxTestCase):

    def server(self, config_text, args=None, env=None, port=None, name=None):
        """A HapaxServer whose readiness port may differ from its file's."""
        name = name or "srv%d" % len(self._servers)
        srv = HapaxServer(self.workdir, name=name, config_text=config_text, args=args, env=env, port=port)
        self._servers.append(srv)
        return srv

    def start_refused(self, config_text, args=None, env=None):
        """Starts hapax expecting it to exit 1 at start; returns stderr."""
        srv = self.server(config_text, args=args, env=env, port=free_port())
        srv.expected_exit = 1
        srv.start(wait_ready=False)
        rc = srv.wait_exit(EXIT_TIMEOUT)
        self.assertEqual(rc, 1, "hapax did not refuse to start; stderr:\n%s" % srv.stderr_text())
        return srv.stderr_text()

    def security_warnings(self, srv):
        return [r for r in srv.logs()[0] if r.get("event") == "security" and r.get("level") == "warn"]


class TestSecureDefaults(DefaultsTestCase):

    def test_builtin_and_shipped_hosts_are_loopback(self):
        path = self.write_file("min.yaml", "logging:\n  level: info\n")
        r = self.cli(["--config", path, "--print-config"])
        self.assertEqual(r.returncode, 0, r)
        self.assertIn('host: "127.0.0.1"', r.stdout)
        self.assertIn("allow_unauthenticated: false", r.stdout)
        shipped = os.path.join(REPO_ROOT, "config", "hapax.yaml")
        r = self.cli(["--config", shipped, "--print-config"], env={"HAPAX_HOST": None, "HAPAX_PORT": None})
        self.assertEqual(r.returncode, 0, r)
        self.assertIn('host: "127.0.0.1"', r.stdout)
        self.assertIn("port: 8080", r.stdout)
        r = self.cli(["--config", shipped, "--validate"], env={"HAPAX_HOST": None, "HAPAX_PORT": None})
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "configuration is valid"), r)

    def test_non_loopback_without_auth_is_a_config_error(self):
        for host in ("0.0.0.0", "::", "192.0.2.10"):
            with self.subTest(host=host):
                text = yaml_of(free_port(), {"server": {"host": host}})
                err = self.start_refused(text)
                self.assertIn("server.host", err)
                self.assertIn(host, err)
                # both ways out are named
                self.assertIn("auth.keys", err)
                self.assertIn("server.allow_unauthenticated: true", err)
                r = self.cli(["--config", self.write_file("v.yaml", text), "--validate"])
                self.assertEqual(r.returncode, 1, r)
                self.assertIn("server.allow_unauthenticated", r.stderr)
        # The first way out: client keys. No opt-in, no warning needed.
        key = secret("sk-hapax-defaults-client-key-1")
        port = free_port()
        srv = self.server(yaml_of(port, {"server": {"host": "0.0.0.0"},
                                         "auth": {"enabled": True, "keys": [{"name": "app", "key": key}]}}),
                          port=port)
        srv.start()
        self.assertEqual(self.security_warnings(srv), [])
        self.assertJsonError(srv.get("/metrics"), 401, "invalid_api_key")
        # Loopback without auth: no warning either.
        srv = self.start_server()
        self.assertEqual(self.security_warnings(srv), [])

    def test_opt_in_starts_with_a_security_warning(self):
        port = free_port()
        srv = self.server(yaml_of(port, {"server": {"host": "0.0.0.0", "allow_unauthenticated": True}}), port=port)
        srv.start()
        self.assertEqual(srv.get("/health").status, 200)
        warn = srv.wait_log(lambda r: r.get("event") == "security", timeout=5)
        self.assertIsNotNone(warn, "no security warning at start:\n%s" % srv.stderr_text())
        self.assertEqual(warn.get("level"), "warn", warn)
        self.assertEqual(warn.get("host"), "0.0.0.0", warn)
        # the opt-in also opens /metrics
        self.assertEqual(srv.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status, 200)

    def test_reload_to_a_non_loopback_host_is_refused(self):
        srv = self.start_server()
        with open(srv.config_path, "w") as f:
            f.write(yaml_of(srv.port, {"server": {"host": "0.0.0.0"}}))
        srv.signal(signal.SIGHUP)
        rec = srv.wait_log(lambda r: r.get("event") == "config_reload" and r.get("result") == "failure", timeout=10)
        self.assertIsNotNone(rec, "the reload was not refused:\n%s" % srv.stderr_text()[-3000:])
        self.assertIn("allow_unauthenticated", rec.get("error", ""), rec)
        self.assertEqual(srv.get("/health").status, 200)

    def test_reload_turning_auth_off_on_an_exposed_listener_is_refused(self):
        # The listener keeps its start address (host changes need a
        # restart): a new file saying "127.0.0.1, no auth" must not leave
        # 0.0.0.0 served without keys.
        key = secret("sk-hapax-defaults-client-key-4")
        port = free_port()
        srv = self.server(yaml_of(port, {"server": {"host": "0.0.0.0"},
                                         "auth": {"enabled": True, "keys": [{"name": "app", "key": key}]}}),
                          port=port)
        srv.start()
        with open(srv.config_path, "w") as f:
            f.write(yaml_of(port))
        srv.signal(signal.SIGHUP)
        rec = srv.wait_log(lambda r: r.get("event") == "config_reload" and r.get("result") in ("failure", "success"),
                           timeout=10)
        self.assertIsNotNone(rec, srv.stderr_text()[-3000:])
        self.assertEqual(rec.get("result"), "failure", rec)
        self.assertIn("0.0.0.0", rec.get("error", ""), rec)
        self.assertIn("allow_unauthenticated", rec.get("error", ""), rec)
        # still protected
        self.assertJsonError(srv.get("/metrics"), 401, "invalid_api_key")
        self.assertEqual(srv.get("/metrics", headers={"X-API-Key": key}).status, 403)

    def test_metrics_only_for_loopback_clients_while_auth_is_off(self):
        # Behind a trusted proxy on loopback, the client it names decides.
        srv = self.start_server({"rate_limit": {"trusted_proxies": ["127.0.0.1"]}})
        r = srv.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"hapax_", r.body)
        r = srv.get("/metrics", headers={"X-Forwarded-For": "127.0.0.5"})
        self.assertEqual(r.status, 200, r)
        for far in ("203.0.113.9", "2001:db8::7"):
            r = srv.get("/metrics", headers={"X-Forwarded-For": far})
            err = self.assertJsonError(r, 403, "forbidden")
            self.assertIn("loopback", err["message"])
            self.assertIn("allow_unauthenticated", err["message"])
            self.assertNotIn(b"hapax_", r.body)
        # Without a trusted proxy the header is not believed: the peer is loopback.
        srv2 = self.start_server()
        self.assertEqual(srv2.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status, 200)


class TestOneProcessPerPort(DefaultsTestCase):

    def test_second_instance_on_the_same_port_fails(self):
        first = self.start_server({"server": {"workers": 2}})
        second = self.server(yaml_of(first.port, {"server": {"workers": 2}}), port=first.port, name="second")
        second.expected_exit = None
        second.start(wait_ready=False)
        rc = second.wait_exit(EXIT_TIMEOUT)
        if rc is None:
            second.kill()
        self.assertIsNotNone(rc, "the second hapax is still running on the same port")
        self.assertNotEqual(rc, 0)
        self.assertIn("address already in use", second.stderr_text().lower())
        # The first keeps serving, on all of its workers.
        for _ in range(20):
            self.assertEqual(first.get("/health").status, 200)
        # Once it is gone, the port can be taken again at once.
        self.assertEqual(first.stop(), 0)
        third = self.server(yaml_of(first.port), port=first.port, name="third")
        third.start()
        self.assertEqual(third.get("/health").status, 200)

    def test_port_taken_by_another_program(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((HOST, 0))
        s.listen(8)
        try:
            err = self.start_refused(yaml_of(s.getsockname()[1]))
            self.assertIn("address already in use", err.lower())
        finally:
            s.close()


class TestHealthWording(DefaultsTestCase):

    def health(self, srv, headers=None):
        r = srv.get("/health", headers=headers)
        return r, json.loads(r.body)

    def test_unknown_until_checked(self):
        mock = self.start_mock()
        p = provider("openai", mock)
        p.update({"retry": {"max_retries": 0},
                  "health_check": {"enabled": True, "interval": "60s", "timeout": "2s", "failure_threshold": 2}})
        srv = self.start_server({"llm": p})
        r, doc = self.health(srv)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(doc["providers"]["openai"]["status"], "unknown", doc)
        self.assertEqual(doc["providers"]["openai"]["checks"], 0, doc)
        self.assertEqual(doc["status"], "ok", doc)  # an unknown provider is still tried
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=chat("hi"), timeout=REQ_TIMEOUT)
        self.assertEqual(r.status, 200, r)
        _, doc = self.health(srv)
        self.assertEqual(doc["providers"]["openai"]["status"], "up", doc)

    def test_probe_makes_it_known(self):
        mock = self.start_mock()
        p = provider("openai", mock)
        p["health_check"] = {"enabled": True, "interval": "300ms", "timeout": "2s", "failure_threshold": 2}
        srv = self.start_server({"llm": p})
        deadline = time.monotonic() + 10
        while True:
            _, doc = self.health(srv)
            st = doc["providers"]["openai"]
            if st["checks"] >= 1:
                break
            self.assertEqual(st["status"], "unknown", st)
            self.assertLess(time.monotonic(), deadline, "no probe ran: %r" % doc)
            time.sleep(0.05)
        self.assertEqual(st["status"], "up", st)

    def test_unreachable_ollama_names_url_and_variable(self):
        port = closed_port()
        user, pw, qkey = "opsuser", secret("pw-hapax-defaults-9f3"), secret("qk-hapax-defaults-4e1")
        url = "http://%s:%s@127.0.0.1:%d/base?key=%s#frag" % (user, pw, port, qkey)
        p = {"provider": "ollama", "model": "llama3.2", "endpoint": "${OLLAMA_ENDPOINT}",
             "retry": {"max_retries": 0}, "connect_timeout": "2s",
             "health_check": {"enabled": True, "interval": "300ms", "timeout": "1s", "failure_threshold": 1}}
        srv = self.start_server({"llm": p}, env={"OLLAMA_ENDPOINT": url})
        shown = "http://127.0.0.1:%d/base" % port
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=chat("hi"), timeout=REQ_TIMEOUT)
        err = self.assertJsonError(r, 503, "service_unavailable")
        msg = err["message"]
        self.assertIn("connection_error", msg)
        self.assertIn(shown, msg)
        self.assertIn("OLLAMA_ENDPOINT", msg)
        for s in (pw, qkey, user, "frag"):
            self.assertNotIn(s, msg)
        # once the probe has marked it down, /health says where and what to do
        deadline = time.monotonic() + 10
        while True:
            r, doc = self.health(srv)
            st = doc["providers"]["ollama"]
            if st["status"] == "down":
                break
            self.assertLess(time.monotonic(), deadline, "never marked down: %r" % doc)
            time.sleep(0.05)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(st["endpoint"], shown, st)
        self.assertIn("OLLAMA_ENDPOINT", st["hint"], st)
        self.assertIn("Ollama", st["hint"], st)
        for s in (pw, qkey, user):
            self.assertNotIn(s, r.body.decode())
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=chat("hi"), timeout=REQ_TIMEOUT)
        msg = self.assertJsonError(r, 503, "service_unavailable")["message"]
        self.assertIn("unhealthy", msg)
        self.assertIn(shown, msg)
        self.assertIn("OLLAMA_ENDPOINT", msg)
        r = srv.get("/health/providers/ollama")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json()["ollama"]["endpoint"], shown)

    def test_shipped_ollama_default_says_what_to_start(self):
        # The built-in default endpoint (http://localhost:11434) is not
        # guaranteed to be free here: check the wording against it only
        # when nothing listens there.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        listening = s.connect_ex(("127.0.0.1", 11434)) == 0
        s.close()
        if listening:
            self.skipTest("something listens on localhost:11434")
        p = {"provider": "ollama", "model": "llama3.2", "retry": {"max_retries": 0},
             "health_check": {"enabled": False}}
        srv = self.start_server({"llm": p}, env={"OLLAMA_ENDPOINT": None})
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=chat("hi"), timeout=REQ_TIMEOUT)
        msg = self.assertJsonError(r, 503, "service_unavailable")["message"]
        self.assertIn("http://localhost:11434", msg)
        self.assertIn("start Ollama", msg)
        self.assertIn("OLLAMA_ENDPOINT", msg)

    def test_hardcoded_endpoint_gets_url_without_variable_hint(self):
        port = closed_port()
        p = provider("openai", endpoint="http://127.0.0.1:%d/v1" % port)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False}, "connect_timeout": "2s"})
        srv = self.start_server({"llm": p}, env={"OPENAI_ENDPOINT": None})
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=chat("hi"), timeout=REQ_TIMEOUT)
        msg = self.assertJsonError(r, 503, "service_unavailable")["message"]
        self.assertIn("http://127.0.0.1:%d/v1" % port, msg)
        self.assertNotIn("_ENDPOINT", msg)

    def test_endpoint_private_behind_auth(self):
        key = secret("sk-hapax-defaults-client-key-2")
        mkey = secret("sk-hapax-defaults-metrics-key-3")
        mock = self.start_mock()
        p = provider("openai", mock)
        p["health_check"] = {"enabled": False}
        srv = self.start_server({"llm": p, "auth": {"enabled": True, "keys": [
            {"name": "app", "key": key}, {"name": "prom", "key": mkey, "metrics": True}]}})
        _, doc = self.health(srv)
        self.assertNotIn("endpoint", doc["providers"]["openai"], doc)
        _, doc = self.health(srv, headers={"X-API-Key": key})
        self.assertNotIn("endpoint", doc["providers"]["openai"], doc)
        _, doc = self.health(srv, headers={"X-API-Key": mkey})
        self.assertEqual(doc["providers"]["openai"]["endpoint"], mock.endpoint("openai"), doc)


class TestHostPortOverrides(DefaultsTestCase):

    def test_port_flag_and_environment(self):
        file_port = free_port()
        text = yaml_of(file_port)
        flag_port, env_port = free_port(), free_port()
        srv = self.server(text, args=["--port", str(flag_port)], env={"HAPAX_PORT": str(env_port)},
                          port=flag_port)
        srv.start()
        self.assertEqual(srv.get("/health").status, 200)
        rec = srv.wait_log(lambda r: r.get("msg") == "listening", timeout=5)
        self.assertEqual(rec.get("port"), flag_port, rec)
        # A reload keeps the override (no "takes effect at restart" either).
        srv.signal(signal.SIGHUP)
        ok = srv.wait_log(lambda r: r.get("event") == "config_reload" and r.get("result") == "success", timeout=10)
        self.assertIsNotNone(ok, srv.stderr_text()[-2000:])
        self.assertFalse([r for r in srv.logs()[0] if "next restart" in r.get("msg", "")], srv.stderr_text())
        self.assertEqual(srv.get("/health").status, 200)
        srv2 = self.server(text, env={"HAPAX_PORT": str(env_port)}, port=env_port)
        srv2.start()
        self.assertEqual(srv2.get("/health").status, 200)

    def test_print_config_shows_the_winner(self):
        path = self.write_file("p.yaml", yaml_of(1234))
        cases = [([], {}, "1234", "127.0.0.1"),
                 ([], {"HAPAX_PORT": "2345", "HAPAX_HOST": "::1"}, "2345", "::1"),
                 (["--port", "3456", "--host", "localhost"], {"HAPAX_PORT": "2345", "HAPAX_HOST": "::1"},
                  "3456", "localhost"),
                 (["--port=4567"], {"HAPAX_PORT": ""}, "4567", "127.0.0.1")]
        for args, env, port, host in cases:
            with self.subTest(args=args, env=env):
                full = {"HAPAX_PORT": None, "HAPAX_HOST": None}
                full.update(env)
                r = self.cli(["--config", path, "--print-config"] + args, env=full)
                self.assertEqual(r.returncode, 0, r)
                self.assertIn("port: %s\n" % port, r.stdout)
                self.assertIn('host: "%s"\n' % host, r.stdout)

    def test_overrides_are_validated(self):
        path = self.write_file("p.yaml", yaml_of(1234))
        clean = {"HAPAX_PORT": None, "HAPAX_HOST": None}
        for args, env, needle in [(["--port", "70000"], {}, "--port: invalid port"),
                                  (["--port", "abc"], {}, "--port: invalid port"),
                                  ([], {"HAPAX_PORT": "-1"}, "HAPAX_PORT: invalid port"),
                                  (["--host", ""], {}, "--host: empty host"),
                                  ([], {"HAPAX_HOST": "0.0.0.0"}, "0.0.0.0 (from HAPAX_HOST)"),
                                  (["--host", "0.0.0.0"], {}, "allow_unauthenticated")]:
            with self.subTest(args=args, env=env):
                e = dict(clean)
                e.update(env)
                r = self.cli(["--config", path, "--validate"] + args, env=e)
                self.assertEqual(r.returncode, 1, r)
                self.assertIn(needle, r.stderr)
        r = self.cli(["--config", path, "--port"], env=clean)
        self.assertEqual(r.returncode, 2, r)
        r = self.cli(["--help"])
        for flag in ("--host", "--port", "HAPAX_HOST", "HAPAX_PORT"):
            self.assertIn(flag, r.stdout)
