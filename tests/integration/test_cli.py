"""Command line: --version, --help, --validate, --print-config, bad flags,
bad or missing config files."""

import os
import re
import socket
import subprocess
import time

from harness import (HOST, REPO_ROOT, HapaxTestCase, base_config, child_env, free_port,
                     render_yaml, _die_with_parent)
import harness


class CliFlagsTest(HapaxTestCase):

    def test_version(self):
        r = self.cli(["--version"])
        self.assertEqual(r.returncode, 0, r)
        first = r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""
        self.assertEqual(first, "hapax 0.1.0", "stdout: %r" % r.stdout)

    def test_help(self):
        r = self.cli(["--help"])
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout.lower(), r"usage", "usage not on stdout: %r" % r.stdout)
        for flag in ("--config", "--validate", "--print-config", "--version", "--help"):
            self.assertIn(flag, r.stdout, "usage does not mention %s" % flag)

    def test_unknown_flag(self):
        r = self.cli(["--frobnicate"])
        self.assertEqual(r.returncode, 2, r)
        self.assertRegex(r.stderr.lower(), r"usage", "usage not on stderr: %r" % r.stderr)
        self.assertIn("--config", r.stderr)

    def test_missing_config_file(self):
        missing = os.path.join(self.workdir, "does-not-exist.yaml")
        for extra in ([], ["--validate"]):
            with self.subTest(args=extra):
                r = self.cli(["--config", missing] + extra)
                self.assertEqual(r.returncode, 1, r)
                self.assertIn("does-not-exist.yaml", r.stderr,
                              "the message should name the missing file: %r" % r.stderr)


class ValidateTest(HapaxTestCase):

    def test_valid_config(self):
        path = self.write_file("good.yaml", render_yaml(base_config(free_port())) + "\n")
        r = self.cli(["--config", path, "--validate"])
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("configuration is valid", r.stdout)

    def test_two_errors_both_reported_with_positions(self):
        text = (
            "server:\n"                       # 1
            "  host: 127.0.0.1\n"             # 2
            "  port: %d\n"                    # 3
            "  http3:\n"                      # 4
            "    allow_0rtt_replayy: true\n"  # 5  <- unknown key
            "logging:\n"                      # 6
            "  level: loud\n"                 # 7  <- bad value
        ) % free_port()
        path = self.write_file("bad.yaml", text)
        r = self.cli(["--config", path, "--validate"])
        self.assertEqual(r.returncode, 1, r)
        self.assertNotIn("configuration is valid", r.stdout)
        lines = r.stderr.splitlines()
        unknown = [ln for ln in lines if "allow_0rtt_replayy" in ln]
        self.assertTrue(unknown, "no error names the unknown key; stderr:\n%s" % r.stderr)
        self.assertTrue(any(re.search(r"bad\.yaml:5:\d+: \S*allow_0rtt_replayy\S*: \S", ln)
                            for ln in unknown),
                        "unknown-key error is not 'FILE:5:COL: path: message': %r" % unknown)
        self.assertTrue(any("server.http3.allow_0rtt_replayy" in ln for ln in unknown),
                        "error should give the full key path: %r" % unknown)
        level = [ln for ln in lines if "logging.level" in ln]
        self.assertTrue(level, "no error for logging.level: loud; stderr:\n%s" % r.stderr)
        self.assertTrue(any(re.search(r"bad\.yaml:7:\d+: logging\.level: \S", ln) for ln in level),
                        "logging.level error is not 'FILE:7:COL: logging.level: message': %r" % level)

    def test_shipped_example_config_is_valid(self):
        path = os.path.join(REPO_ROOT, "config", "hapax.yaml")
        self.assertTrue(os.path.isfile(path), "config/hapax.yaml is missing")
        r = self.cli(["--config", path, "--validate"])
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("configuration is valid", r.stdout)


class PrintConfigTest(HapaxTestCase):

    SECRET = "sk-test-SECRET123"

    def test_print_config_redacts_env_secret(self):
        port = free_port()
        text = (
            "server:\n"
            "  host: 127.0.0.1\n"
            "  port: %d\n"
            "llm:\n"
            "  provider: openai\n"
            "  model: gpt-4o-mini\n"
            "  api_key: ${TEST_SECRET_KEY}\n"
        ) % port
        path = self.write_file("secret.yaml", text)
        r = self.cli(["--config", path, "--print-config"], env={"TEST_SECRET_KEY": self.SECRET})
        self.assertEqual(r.returncode, 0, r)
        self.assertNotIn(self.SECRET, r.stdout)
        self.assertNotIn(self.SECRET, r.stderr)
        self.assertNotIn("SECRET123", r.stdout)
        self.assertIn("[redacted]", r.stdout)
        # It is the effective config, as YAML.
        self.assertRegex(r.stdout, r"(?m)^server:\s*$")
        self.assertRegex(r.stdout, r"(?m)^\s+port:\s*%d\s*$" % port)
        self.assertRegex(r.stdout, r"(?m)^\s+api_key:\s*\"?\[redacted\]\"?\s*$")


class InvalidConfigStartTest(HapaxTestCase):

    def test_invalid_config_exits_1_without_listening(self):
        port = free_port()
        cfg = base_config(port)
        cfg["logging"] = {"level": "loud"}
        path = self.write_file("invalid.yaml", render_yaml(cfg) + "\n")
        errpath = os.path.join(self.workdir, "invalid.stderr")
        with open(errpath, "wb") as err:
            proc = subprocess.Popen([harness.BIN, "--config", path], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, env=child_env(),
                                    preexec_fn=_die_with_parent, cwd=self.workdir)
            listened = False
            deadline = time.monotonic() + 10
            try:
                while proc.poll() is None and time.monotonic() < deadline:
                    s = socket.socket()
                    s.settimeout(0.5)
                    try:
                        s.connect((HOST, port))
                        listened = True
                    except OSError:
                        pass
                    finally:
                        s.close()
                    time.sleep(0.02)
                rc = proc.poll()
                if rc is None:
                    proc.kill()
                    proc.wait(5)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
        with open(errpath, "rb") as f:
            stderr = f.read().decode("utf-8", "replace")
        self._cli_runs.append(("hapax --config invalid.yaml", stderr))
        self.assertIsNotNone(rc, "hapax kept running with an invalid config")
        self.assertEqual(rc, 1, "exit status with an invalid config; stderr:\n%s" % stderr)
        self.assertFalse(listened, "hapax accepted a connection although its config is invalid")
        self.assertIn("logging.level", stderr)
