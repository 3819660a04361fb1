"""Operators (issue 9): the log never blocks a loop (bounded queue, dropped
lines counted, SIGUSR1 reopen), only regular files are read (FIFO config or
state file), --print-config redacts URL secrets, deep YAML is rejected fast,
the state file is 0600, a second SIGTERM still saves state, and streams cut
at shutdown_timeout get an error event and a proper end."""

import json
import os
import signal
import subprocess
import threading
import time

from harness import (HapaxTestCase, RawConn, base_config, build_request, child_env, deep_merge,
                     describe_status, free_port, render_yaml, sanitizer_findings, secret, tail)

REQ_TIMEOUT = 20.0


def health_batch(n, tag):
    return b"".join(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: %s-%d\r\n\r\n"
                    % (tag.encode(), i) for i in range(n))


class LogSinkTest(HapaxTestCase):

    def test_blocked_log_sink_does_not_stop_requests(self):
        # stderr is a pipe nobody reads: once its 64 KiB are full, a
        # synchronous write(2) blocks the worker that logs. Requests must
        # still be answered; the lines that do not fit are counted.
        port = free_port()
        cfg = deep_merge(base_config(port), {"logging": {"level": "debug"}})
        path = self.write_file("blocked.yaml", render_yaml(cfg) + "\n")
        from harness import BIN
        proc = subprocess.Popen([BIN, "--config", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=child_env(None), cwd=self.workdir)
        drained = []
        try:
            c = None
            deadline = time.monotonic() + 10
            while c is None:
                try:
                    c = RawConn(port, timeout=REQ_TIMEOUT)
                except OSError:
                    self.assertLess(time.monotonic(), deadline, "hapax did not start")
                    time.sleep(0.05)
            self._conns.append(c)
            # ~20k access lines of ~300 bytes: far more than the pipe and
            # the 2 x 1 MiB queue hold.
            for batch in range(200):
                c.send(health_batch(100, "b%d" % batch))
                for _ in range(100):
                    r = c.read_response(timeout=REQ_TIMEOUT)
                    self.assertEqual(r.status, 200)
            m = c.request("GET", "/metrics", timeout=REQ_TIMEOUT)
            self.assertEqual(m.status, 200)
            dropped = [ln for ln in m.body.decode().splitlines()
                       if ln.startswith("hapax_log_dropped_lines_total ")]
            self.assertEqual(len(dropped), 1, "no hapax_log_dropped_lines_total in /metrics")
            self.assertGreater(float(dropped[0].split()[1]), 0)

            # Once the sink reads again, the loss is reported in the log.
            def drain():
                while True:
                    chunk = proc.stderr.read1(65536)
                    if not chunk:
                        return
                    drained.append(chunk)
            t = threading.Thread(target=drain, daemon=True)
            t.start()
            c.send(health_batch(1, "after"))
            self.assertEqual(c.read_response(timeout=REQ_TIMEOUT).status, 200)
            # The backlog (up to 2 MiB) reaches the sink before the exit: the
            # loss report is written once the queue has room again. Only then
            # is the exit line's flush a fair test (a full queue drops it,
            # by design, and the exit waits at most 2 s for the sink).
            until = time.monotonic() + 30
            while b'"event":"log_dropped"' not in b"".join(drained) and time.monotonic() < until:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=15)
            t.join(10)
            self.assertEqual(rc, 0, describe_status(rc))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        text = b"".join(drained).decode("utf-8", "replace")
        self.assertEqual(sanitizer_findings(text), [], tail(text, 40))
        recs = [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
        warn = [r for r in recs if r.get("event") == "log_dropped"]
        self.assertTrue(warn, "no 'log lines dropped' warning once the sink drained")
        self.assertGreater(warn[-1]["dropped_total"], 0)
        self.assertTrue(any(r.get("msg") == "stopped" for r in recs), "the exit line was not flushed")

    def test_sigusr1_reopens_log_file(self):
        log = os.path.join(self.workdir, "hapax.log")
        srv = self.start_server({"logging": {"file": log}})
        self.assertEqual(srv.get("/health", headers={"X-Request-ID": "before-rotate"}).status, 200)
        # The log writer thread writes the access line a moment after the
        # answer; rotate once it is in the file (under load it may not be yet).
        deadline = time.monotonic() + 10
        while True:
            with open(log) as f:
                if "before-rotate" in f.read():
                    break
            self.assertLess(time.monotonic(), deadline, "the access line never reached logging.file")
            time.sleep(0.02)
        os.rename(log, log + ".1")
        srv.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(log):
            self.assertLess(time.monotonic(), deadline, "SIGUSR1 did not reopen logging.file")
            time.sleep(0.05)
        self.assertEqual(srv.get("/health", headers={"X-Request-ID": "after-rotate"}).status, 200)
        self.assertEqual(srv.stop(), 0)
        with open(log) as f:
            new = f.read()
        with open(log + ".1") as f:
            old = f.read()
        self.assertIn("before-rotate", old)
        self.assertNotIn("after-rotate", old)
        self.assertIn("after-rotate", new)
        self.assertIn('"event":"log_reopen"', new)
        # Flushed at exit: the last line is there.
        self.assertIn('"msg":"stopped"', new)
        self.assertEqual(os.stat(log).st_mode & 0o007, 0, "the log file is world-accessible")

    def test_fatal_signal_writes_queued_lines_then_crash_line(self):
        import harness
        if "asan" in harness.BIN:
            self.skipTest("sanitizer build: ASan reports fatal signals itself")
        log = os.path.join(self.workdir, "hapax.log")
        srv = self.start_server({"logging": {"file": log}})
        for i in range(20):
            self.assertEqual(srv.get("/health", headers={"X-Request-ID": "pre-crash-%d" % i}).status, 200)
        srv.expected_exit = None
        srv.signal(signal.SIGSEGV)
        rc = srv.wait_exit(10)
        self.assertEqual(rc, -signal.SIGSEGV, describe_status(rc))
        with open(log) as f:
            text = f.read()
        self.assertIn('"event":"crash"', text)
        self.assertIn("pre-crash-19", text[:text.index('"event":"crash"')])


class FileSafetyTest(HapaxTestCase):

    def test_fifo_config_on_reload_does_not_block(self):
        srv = self.start_server()
        fifo = os.path.join(self.workdir, "fifo.tmp")
        os.mkfifo(fifo)
        os.rename(fifo, srv.config_path)   # the watcher fires too
        srv.signal(signal.SIGHUP)
        rec = srv.wait_log(lambda r: r.get("event") == "config_reload" and r.get("result") == "failure"
                           and "not a regular file" in r.get("error", ""), timeout=10)
        self.assertIsNotNone(rec, "reload of a FIFO config did not fail cleanly:\n%s"
                             % tail(srv.stderr_text(), 20))
        self.assertEqual(srv.get("/health").status, 200)
        srv.expected_exit = None
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(10)
        self.assertEqual(rc, 0, "SIGTERM after a FIFO reload: %s" % describe_status(rc))

    def test_fifo_state_file_does_not_hang_startup(self):
        state_dir = os.path.join(self.workdir, "state")
        os.makedirs(state_dir)
        os.mkfifo(os.path.join(state_dir, "hapax-state.json"))
        srv = self.start_server({"queue": {"state_path": state_dir, "save_interval": "1h"}})
        self.assertEqual(srv.get("/health").status, 200)
        self.assertEqual(srv.stop(), 0)
        st = os.stat(os.path.join(state_dir, "hapax-state.json"))
        self.assertEqual(oct(st.st_mode & 0o777), oct(0o600))
        self.assertTrue(any(n.startswith("hapax-state.json.corrupt-") for n in os.listdir(state_dir)))


class ConfigCliTest(HapaxTestCase):

    def test_print_config_redacts_url_secrets(self):
        pw = secret("pw-9f8e7d")
        key = secret("AIza-k3y-55")
        tok = secret("tok-abc-123")
        path = self.write_file("urls.yaml", render_yaml({
            "llm": {"provider": "openai", "model": "m",
                    "endpoint": "https://user:%s@api.example.com/v1?key=%s&alt=sse" % (pw, key),
                    "backup_providers": [{"provider": "openai", "model": "m",
                                          "endpoint": "http://h:1/v1?access_token=%s&x=1" % tok}]},
        }) + "\n")
        res = self.cli(["--config", path, "--print-config"])
        self.assertEqual(res.returncode, 0, res.stderr)
        for s in (pw, key, tok):
            self.assertNotIn(s, res.stdout)
        self.assertIn("https://user:[redacted]@api.example.com/v1?key=[redacted]&alt=sse", res.stdout)
        self.assertIn("http://h:1/v1?access_token=[redacted]&x=1", res.stdout)

    def test_deep_yaml_rejected_quickly(self):
        n = 100000
        path = self.write_file("deep.yaml", "server: " + "[" * n + "]" * n + "\n")
        t0 = time.monotonic()
        res = self.cli(["--config", path, "--validate"], timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("deep.yaml:1:72: nesting deeper than 64 levels", res.stderr)
        self.assertLess(took, 5.0, "rejecting a 100k-deep YAML took %.1fs" % took)


class ShutdownStateTest(HapaxTestCase):

    def test_second_sigterm_still_saves_state(self):
        state_dir = os.path.join(self.workdir, "state")
        srv = self.start_server({"queue": {"state_path": state_dir, "save_interval": "1h"},
                                 "server": {"read_timeout": "60s", "shutdown_timeout": "30s"}})
        srv.expected_exit = None
        srv.allow_leaks = True
        c = self.conn(srv)
        c.send(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n12345")
        time.sleep(0.2)
        srv.signal(signal.SIGTERM)
        time.sleep(0.5)
        self.assertTrue(srv.alive())
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(5)
        self.assertEqual(rc, 1, describe_status(rc))
        path = os.path.join(state_dir, "hapax-state.json")
        self.assertTrue(os.path.exists(path), "a forced exit did not save the state file")
        with open(path) as f:
            self.assertEqual(json.load(f)["version"], 1)


class ShutdownStreamTest(HapaxTestCase):
    """At shutdown_timeout an open stream ends visibly: an error event in its
    client's format, then the final chunk, then the connection closes."""

    def _stream_cut(self, path, body, kind):
        from test_providers import llm, provider
        mock = self.start_mock(args=["--chunks", "200"])   # 200 x 200 ms: far past the deadline
        cfg = llm(provider(kind, mock, fault="slow"))
        cfg["server"] = {"shutdown_timeout": "1s"}
        srv = self.start_server(cfg)
        c = RawConn(srv.port, timeout=REQ_TIMEOUT)
        self._conns.append(c)
        c.send(build_request("POST", path, {"Content-Type": "application/json"}, json.dumps(body)))
        head = c.read_head(timeout=REQ_TIMEOUT)
        self.assertEqual(head.status, 200, head)
        c.read_until(b"\n\n", timeout=REQ_TIMEOUT)   # the first event has arrived
        srv.expected_exit = None
        srv.signal(signal.SIGTERM)
        rest = c.read_until_close(timeout=15)
        rc = srv.wait_exit(10)
        self.assertEqual(rc, 0, describe_status(rc))
        return rest

    def test_openai_stream_gets_error_event_and_final_chunk(self):
        from test_providers import user
        rest = self._stream_cut("/v1/chat/completions",
                                {"messages": [user("hi")], "stream": True}, "openai")
        self.assertIn(b"shutting down", rest, rest[-500:])
        self.assertIn(b'data: {"error":', rest)
        self.assertTrue(rest.endswith(b"\r\n0\r\n\r\n"), "no final chunk: %r" % rest[-200:])

    def test_anthropic_stream_gets_error_event_and_final_chunk(self):
        from test_providers import MODELS, user
        rest = self._stream_cut("/v1/messages",
                                {"model": MODELS["anthropic"], "messages": [user("hi")], "max_tokens": 50,
                                 "stream": True},
                                "anthropic")
        self.assertIn(b"event: error", rest, rest[-500:])
        self.assertIn(b"shutting down", rest)
        self.assertTrue(rest.endswith(b"\r\n0\r\n\r\n"), "no final chunk: %r" % rest[-200:])

    def test_unanswered_request_gets_503_at_deadline(self):
        from test_providers import llm, provider, user
        mock = self.start_mock()
        cfg = llm(provider("openai", mock, fault="hang"))
        cfg["server"] = {"shutdown_timeout": "1s"}
        srv = self.start_server(cfg)
        c = RawConn(srv.port, timeout=REQ_TIMEOUT)
        self._conns.append(c)
        c.send(build_request("POST", "/v1/chat/completions", {"Content-Type": "application/json"},
                             json.dumps({"messages": [user("hi")]})))
        mock.wait_stats(lambda s: s["active"] >= 1, timeout=5)
        srv.expected_exit = None
        srv.signal(signal.SIGTERM)
        r = c.read_response("POST", timeout=15)
        self.assertJsonError(r, 503, r.json()["error"]["code"])
        self.assertIn("shutting down", r.json()["error"]["message"])
        self.assertEqual(srv.wait_exit(10), 0)
