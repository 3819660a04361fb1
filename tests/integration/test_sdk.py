"""Four client libraries against hapax: the official OpenAI and Anthropic
Node SDKs, the Vercel AI SDK and LangChain JS.

Starts the mock provider and hapax with the providers the JS tests expect
(see the top of tests/sdk/*.test.mjs) and runs each file with
`node --test`, HAPAX_URL pointing at hapax and MOCK_URL at the mock (the
tests read /_mock/last to see what the upstream received). Node.js >= 18.17
(Debian bookworm's nodejs 18.19 is enough) and the packages from
tests/sdk/package-lock.json (`cd tests/sdk && npm ci`) are required: when
they are missing these tests FAIL (they are not skipped).
"""

import json
import os
import re
import shutil
import subprocess

from harness import REPO_ROOT, HapaxTestCase, child_env, deep_merge, free_port, http_request, secret

SDK_DIR = os.path.join(REPO_ROOT, "tests", "sdk")
NODE_TIMEOUT = 120.0
NODE_MIN = (18, 17)  # the AI SDK's undici and provider-utils declare >= 18.17
# Every client library the tests import (package.json's dependencies).
SDK_PACKAGES = ("openai", "@anthropic-ai/sdk", "ai", "@ai-sdk/openai", "@ai-sdk/anthropic", "zod",
                "@langchain/core", "@langchain/openai", "@langchain/anthropic")


class SdkBase(HapaxTestCase):
    """Node and the SDK packages must be there; one mock provider."""

    def setUp(self):
        super().setUp()
        self.node = shutil.which("node")
        if not self.node:
            self.fail("node is not installed (or not in PATH): the SDK end-to-end tests need "
                      "Node.js >= %d.%d (Debian's nodejs package is enough), then `cd tests/sdk && npm ci`"
                      % NODE_MIN)
        ver = subprocess.run([self.node, "--version"], capture_output=True, text=True, timeout=30)
        m = re.match(r"v(\d+)\.(\d+)\.", ver.stdout.strip())
        if not m or (int(m.group(1)), int(m.group(2))) < NODE_MIN:
            self.fail("node %r is too old: the SDK tests need Node.js >= %d.%d (the AI SDK's "
                      "undici does; Debian bookworm's nodejs 18.19 is enough)"
                      % ((ver.stdout.strip(),) + NODE_MIN))
        for pkg in SDK_PACKAGES:
            if not os.path.isfile(os.path.join(SDK_DIR, "node_modules", *pkg.split("/"), "package.json")):
                self.fail("tests/sdk/node_modules/%s is missing: run `cd tests/sdk && npm ci` "
                          "(installs the versions pinned in package-lock.json)" % pkg)
        self.mock = self.start_mock(name="mock")

    def run_node(self, filename, extra_env=None):
        path = os.path.join(SDK_DIR, filename)
        self.assertTrue(os.path.isfile(path), path)
        env = child_env(dict({"HAPAX_URL": "http://127.0.0.1:%d" % self.srv.port,
                         "MOCK_URL": self.mock.url,
                         "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                         "OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None,
                         "OPENAI_BASE_URL": None, "ANTHROPIC_BASE_URL": None, "ANTHROPIC_API_URL": None,
                         "LANGSMITH_TRACING": None, "LANGCHAIN_TRACING_V2": None,
                         "NODE_OPTIONS": None}, **(extra_env or {})))
        try:
            res = subprocess.run([self.node, "--test", "--test-reporter=tap", path],
                                 cwd=SDK_DIR, env=env, capture_output=True, text=True,
                                 errors="replace", timeout=NODE_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            self.fail("node --test %s did not finish within %.0fs; output so far:\n%s"
                      % (filename, NODE_TIMEOUT, (e.stdout or "")[-6000:]))
        out = res.stdout + ("\n--- stderr ---\n" + res.stderr if res.stderr.strip() else "")
        # every failing test by name first: the tail below may not reach back to all of them
        failing = re.findall(r"^not ok \d+ - .*$", res.stdout, re.M)
        head = "failing:\n  %s\n\n" % "\n  ".join(failing) if failing else ""
        passed = re.search(r"^# pass (\d+)$", res.stdout, re.M)
        failed = re.search(r"^# fail (\d+)$", res.stdout, re.M)
        self.assertEqual(res.returncode, 0, "node --test %s failed (exit %d):\n%s"
                         % (filename, res.returncode, head + out[-12000:]))
        self.assertTrue(passed and int(passed.group(1)) > 0,
                        "node --test %s ran no tests:\n%s" % (filename, out[-4000:]))
        self.assertTrue(failed and int(failed.group(1)) == 0, head + out[-4000:])
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
            # no health probes: a probe (GET /v1/models) between an SDK call
            # and the test's look at /_mock/last would hide what the SDK sent
            "health_check": {"enabled": False},
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


class MockForSdkTest(HapaxTestCase):
    """What the SDKs send that the mock provider must answer sensibly
    (tests/mock/README.md): structured output gets a JSON object, tool_choice
    picks the tool. Straight to the mock, no hapax."""

    OBJ = {"location": "Paris"}
    MSGS = [{"role": "user", "content": "answer as json"}]
    AUTH = {"openai": {"Authorization": "Bearer k"},
            "anthropic": {"x-api-key": "k", "anthropic-version": "2023-06-01"}, "ollama": {}}
    PATH = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "ollama": "/api/chat"}

    def setUp(self):
        super().setUp()
        self.mock = self.start_mock(name="mock")

    def post(self, family, body):
        body = dict({"model": "m", "max_tokens": 50, "messages": self.MSGS}, **body)
        r = http_request(self.mock.port, "POST", self.PATH[family],
                         headers=dict({"Content-Type": "application/json"}, **self.AUTH[family]),
                         body=json.dumps(body))
        self.assertEqual(r.status, 200, r)
        return r

    def content(self, family, body):
        """The answer's text, streamed (deltas joined) or not."""
        r = self.post(family, body)
        if not body.get("stream", family == "ollama"):
            d = r.json()
            return {"openai": lambda: d["choices"][0]["message"]["content"],
                    "anthropic": lambda: "".join(b.get("text", "") for b in d["content"]),
                    "ollama": lambda: d["message"]["content"]}[family]()
        lines = r.body.decode().splitlines()
        if family == "ollama":
            return "".join(json.loads(x)["message"]["content"] for x in lines
                           if x and not json.loads(x)["done"])
        evs = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
        if family == "openai":
            return "".join(e["choices"][0]["delta"].get("content") or "" for e in evs if e["choices"])
        return "".join(e["delta"].get("text", "") for e in evs if e["type"] == "content_block_delta")

    def test_structured_output_gets_a_json_object(self):
        schema = {"type": "json_schema", "schema": {"type": "object"}}
        asks = [("openai", {"response_format": {"type": "json_object"}}),
                ("openai", {"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                                                                                     "schema": {}}}}),
                ("anthropic", {"output_config": {"format": schema}}),
                ("anthropic", {"output_format": schema}),
                ("ollama", {"format": "json"}),
                ("ollama", {"format": {"type": "object"}})]
        for family, ask in asks:
            for stream in (False, True):
                with self.subTest(family=family, ask=ask, stream=stream):
                    text = self.content(family, dict(ask, stream=stream))
                    self.assertEqual(json.loads(text), self.OBJ)
        # without the ask: prose, as before
        for family in self.PATH:
            self.assertTrue(self.content(family, {"stream": False}).startswith("Hello from the mock"))
        self.assertTrue(self.content("openai", {"response_format": {"type": "text"}}).startswith("Hello"))

    def test_tool_choice_names_the_tool_or_forbids_tools(self):
        oai_tools = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in ("a", "b")]
        ant_tools = [{"name": n, "input_schema": {}} for n in ("a", "b")]
        d = self.post("openai", {"tools": oai_tools,
                                 "tool_choice": {"type": "function", "function": {"name": "b"}}}).json()
        self.assertEqual(d["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "b")
        d = self.post("anthropic", {"tools": ant_tools, "tool_choice": {"type": "tool", "name": "b"}}).json()
        self.assertEqual(d["content"][0]["name"], "b")
        d = self.post("openai", {"tools": oai_tools, "tool_choice": "none"}).json()
        self.assertEqual(d["choices"][0]["finish_reason"], "stop")
        d = self.post("anthropic", {"tools": ant_tools, "tool_choice": {"type": "none"}}).json()
        self.assertEqual(d["stop_reason"], "end_turn")
        d = self.post("anthropic", {"tools": ant_tools, "tool_choice": {"type": "any"}}).json()
        self.assertEqual(d["content"][0]["name"], "a")


class SdkTlsTest(SdkTest):
    """The same SDK files over HTTPS (docs/tls.md): hapax's TLS listener
    with a certificate for 127.0.0.1 from the test CA, which node trusts
    through NODE_EXTRA_CA_CERTS."""

    def start_server(self, overrides=None, **kw):
        certs = os.path.join(self.workdir, "certs")
        subprocess.run(["sh", os.path.join(REPO_ROOT, "tests", "certs", "gen.sh"), certs], check=True)
        tmpl = os.path.join(certs, "ip.tmpl")
        with open(tmpl, "w") as f:
            f.write('cn = "127.0.0.1"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\n'
                    'expiration_days = 30\n')
        j = lambda n: os.path.join(certs, n)  # noqa: E731
        subprocess.run(["certtool", "--generate-certificate", "--load-privkey", j("server.key"),
                        "--load-ca-certificate", j("ca.pem"), "--load-ca-privkey", j("ca.key"),
                        "--template", tmpl, "--outfile", j("ip.pem")], check=True, capture_output=True)
        self.ca = j("ca.pem")
        self.tls_port = free_port()
        tls = {"server": {"tls": {"enabled": True, "port": self.tls_port, "cert_file": j("ip.pem"),
                                  "key_file": j("server.key")}}}
        return super().start_server(deep_merge(overrides or {}, tls), **kw)

    def run_node(self, filename, extra_env=None):
        env = {"HAPAX_URL": "https://127.0.0.1:%d" % self.tls_port, "NODE_EXTRA_CA_CERTS": self.ca}
        env.update(extra_env or {})
        n = super().run_node(filename, env)
        self.assertIsNotNone(self.srv.wait_log(lambda ln: ln.get("msg") == "request" and ln.get("scheme") == "https"
                                               and ln.get("path", "").startswith("/v1/")),
                             "no request reached hapax over HTTPS")
        return n


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
