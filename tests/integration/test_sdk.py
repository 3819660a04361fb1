"""The official OpenAI and Anthropic Node SDKs against hapax.

Starts the mock provider and hapax with the providers the JS tests expect
(see the top of tests/sdk/*.test.mjs) and runs each file with
`node --test`, HAPAX_URL pointing at hapax. Node.js >= 18 and the packages
from tests/sdk/package-lock.json (`cd tests/sdk && npm ci`) are required:
when they are missing these tests FAIL (they are not skipped).
"""

import os
import re
import shutil
import subprocess

from harness import REPO_ROOT, HapaxTestCase, child_env, secret

SDK_DIR = os.path.join(REPO_ROOT, "tests", "sdk")
NODE_TIMEOUT = 120.0


class SdkBase(HapaxTestCase):
    """Node and the SDK packages must be there; one mock provider."""

    def setUp(self):
        super().setUp()
        self.node = shutil.which("node")
        if not self.node:
            self.fail("node is not installed (or not in PATH): the SDK end-to-end tests need "
                      "Node.js >= 18 (e.g. apt-get install nodejs), then `cd tests/sdk && npm ci`")
        ver = subprocess.run([self.node, "--version"], capture_output=True, text=True, timeout=30)
        m = re.match(r"v(\d+)\.", ver.stdout.strip())
        if not m or int(m.group(1)) < 18:
            self.fail("node %r is too old: the SDK tests need Node.js >= 18" % ver.stdout.strip())
        for pkg in ("openai", os.path.join("@anthropic-ai", "sdk")):
            if not os.path.isfile(os.path.join(SDK_DIR, "node_modules", pkg, "package.json")):
                self.fail("tests/sdk/node_modules/%s is missing: run `cd tests/sdk && npm ci` "
                          "(installs the versions pinned in package-lock.json)" % pkg)
        self.mock = self.start_mock(name="mock")

    def run_node(self, filename, extra_env=None):
        path = os.path.join(SDK_DIR, filename)
        self.assertTrue(os.path.isfile(path), path)
        env = child_env(dict({"HAPAX_URL": "http://127.0.0.1:%d" % self.srv.port,
                         "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                         "OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None,
                         "OPENAI_BASE_URL": None, "ANTHROPIC_BASE_URL": None,
                         "NODE_OPTIONS": None}, **(extra_env or {})))
        try:
            res = subprocess.run([self.node, "--test", "--test-reporter=tap", path],
                                 cwd=SDK_DIR, env=env, capture_output=True, text=True,
                                 errors="replace", timeout=NODE_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            self.fail("node --test %s did not finish within %.0fs; output so far:\n%s"
                      % (filename, NODE_TIMEOUT, (e.stdout or "")[-6000:]))
        out = res.stdout + ("\n--- stderr ---\n" + res.stderr if res.stderr.strip() else "")
        passed = re.search(r"^# pass (\d+)$", res.stdout, re.M)
        failed = re.search(r"^# fail (\d+)$", res.stdout, re.M)
        self.assertEqual(res.returncode, 0, "node --test %s failed (exit %d):\n%s"
                         % (filename, res.returncode, out[-12000:]))
        self.assertTrue(passed and int(passed.group(1)) > 0,
                        "node --test %s ran no tests:\n%s" % (filename, out[-4000:]))
        self.assertTrue(failed and int(failed.group(1)) == 0, out[-4000:])
        return int(passed.group(1))


class SdkTest(SdkBase):

    def setUp(self):
        super().setUp()
        # the broken stream paces its chunks so that content precedes the reset
        self.broken = self.start_mock(name="mock_broken", args=["--chunk-delay-ms", "20"])
        m, b = self.mock, self.broken
        self.srv = self.start_server({"llm": {
            "provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-openai",
            "endpoint": m.endpoint("openai"),
            "connect_timeout": "2s", "first_byte_timeout": "10s", "request_timeout": "30s",
            "backup_providers": [
                {"provider": "anthropic", "model": "claude-3-5-haiku-latest",
                 "api_key": "sk-ant-test", "endpoint": m.endpoint("anthropic")},
                {"provider": "ollama", "model": "llama3.2", "endpoint": m.endpoint("ollama")},
                {"provider": "openai", "name": "ratelimited", "model": "rl-model",
                 "api_key": "sk-test-rl", "endpoint": m.endpoint("openai", "429")},
                {"provider": "openai", "name": "broken-stream", "model": "bs-model",
                 "api_key": "sk-test-bs", "endpoint": b.endpoint("openai", "reset")},
            ] + [{"provider": "anthropic", "name": "ant-%s" % f, "model": "ant-%s-model" % f,
                  "api_key": "sk-ant-test", "endpoint": m.endpoint("anthropic", f)}
                 for f in ("400", "500", "529")]}})




class SdkAuthTest(SdkBase):
    """tests/sdk/auth.test.mjs: the SDKs against hapax with client keys and
    rate limits on (a second hapax on the same mock)."""

    def setUp(self):
        super().setUp()
        self.keys = {"KEY_GOOD": secret("hx-sdk-good-key-7f3a"), "KEY_NARROW": secret("hx-sdk-narrow-key-91bc"),
                     "KEY_TIGHT": secret("hx-sdk-tight-key-4d2e")}
        m = self.mock
        self.srv = self.start_server({
            "llm": {"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-openai",
                    "endpoint": m.endpoint("openai"), "retry": {"max_retries": 0},
                    "backup_providers": [{"provider": "anthropic", "model": "claude-3-5-haiku-latest",
                                          "api_key": "sk-ant-test", "endpoint": m.endpoint("anthropic")}]},
            "auth": {"enabled": True, "keys": [
                {"name": "good", "key": self.keys["KEY_GOOD"]},
                {"name": "narrow", "key": self.keys["KEY_NARROW"], "models": ["gpt-4o-mini"]},
                {"name": "tight", "key": self.keys["KEY_TIGHT"],
                 "rate_limit": {"requests_per_minute": 1, "burst": 1}}]},
            "rate_limit": {"enabled": True, "requests_per_minute": 6000, "burst": 100}}, name="auth")

    def test_auth_sdk(self):
        self.run_node("auth.test.mjs", self.keys)


# One test per tests/sdk/*.test.mjs (test_openai_sdk, test_anthropic_sdk, ...),
# except auth.test.mjs, which needs its own hapax (SdkAuthTest).
def _add_sdk_tests():
    files = sorted(f for f in os.listdir(SDK_DIR) if f.endswith(".test.mjs") and f != "auth.test.mjs")
    if not files:
        def test_sdk_files_exist(self):
            self.fail("no tests/sdk/*.test.mjs files")
        SdkTest.test_sdk_files_exist = test_sdk_files_exist
    for f in files:
        name = "test_%s_sdk" % re.sub(r"[^A-Za-z0-9]", "_", f[:-len(".test.mjs")])
        setattr(SdkTest, name, lambda self, f=f: self.run_node(f))


_add_sdk_tests()
