"""The fidelity suite: every case in tests/fidelity/cases/*.json sends one
request on one ingress API to hapax, which is served by a scripted upstream
of one wire format; the case asserts what the upstream received and what
the client got back (tests/fidelity/README.md has the format). Each row of
the translation table in docs/providers.md names the case or test that
covers it, and FidelityTableTest checks that those exist.
"""

import glob
import json
import os
import re

from fidelity import ScriptedUpstream, match, match_events, parse_sse
from harness import REPO_ROOT, HapaxTestCase

CASES_DIR = os.path.join(REPO_ROOT, "tests", "fidelity", "cases")
PROVIDERS_MD = os.path.join(REPO_ROOT, "docs", "providers.md")

INGRESS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "messages": "/v1/messages",
    "responses": "/v1/responses",
    "embeddings": "/v1/embeddings",
    "count_tokens": "/v1/messages/count_tokens",
}
UPSTREAMS = ("openai", "anthropic", "ollama")
KEYS = {"openai": "sk-fid-openai", "anthropic": "sk-ant-fid"}


def load_cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(CASES_DIR, "*.json"))):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for c in doc if isinstance(doc, list) else [doc]:
            c["_file"] = os.path.basename(path)
            cases.append(c)
    return cases


def config_for(url):
    """Three providers on the scripted upstream: model up-<type> picks one."""
    def prov(kind):
        p = {"provider": kind, "model": "up-" + kind, "name": kind,
             "endpoint": url if kind == "ollama" else url + "/v1"}
        if kind in KEYS:
            p["api_key"] = KEYS[kind]
        return p
    first = prov("openai")
    first.pop("name")
    llm = dict(first, retry={"max_retries": 0}, request_timeout="20s",
               backup_providers=[prov("anthropic"), prov("ollama")])
    return {"llm": llm}


class FidelityTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.up = ScriptedUpstream()
        self.addCleanup(self.up.close)
        self.srv = self.start_server(config_for(self.up.url))

    def run_case(self, c):
        ingress = INGRESS[c["ingress"]]
        req = dict(c.get("request", {}))
        req.setdefault("model", "up-" + c["upstream"])
        headers = {"Content-Type": "application/json"}
        headers.update(c.get("request_headers", {}))
        self.up.script(c["reply"])
        r = self.srv.request(c.get("method", "POST"), ingress, headers=headers, body=json.dumps(req), timeout=20)
        body = r.body.decode("utf-8", "replace")
        what = "%s %s (%s)" % (c["_file"], c["name"], c.get("row", ""))
        self.assertEqual(r.status, c.get("expect_status", 200), "%s: client got %d: %s" % (what, r.status, body[:800]))
        got = self.up.received()
        exp_up = c.get("expect_upstream")
        if exp_up is None:
            self.assertEqual(got, [], "%s: the upstream must not be called" % what)
        else:
            self.assertEqual(len(got), 1, "%s: upstream calls: %r" % (what, got))
            d = match(exp_up, got[0])
            self.assertIsNone(d, "%s: upstream received %s\n%s" % (what, d, json.dumps(got[0])[:1500]))
        for name, value in c.get("expect_headers", {}).items():
            self.assertEqual(r.header(name), value, "%s: header %s" % (what, name))
        if "expect_client" in c:
            d = match(c["expect_client"], r.json())
            self.assertIsNone(d, "%s: client got %s\n%s" % (what, d, body[:1500]))
        if "expect_events" in c:
            d = match_events(c["expect_events"], parse_sse(body))
            self.assertIsNone(d, "%s: %s" % (what, d))
        if "expect_text" in c:
            self.assertEqual(client_text(c["ingress"], r, body), c["expect_text"], what)

    def test_cases(self):
        cases = load_cases()
        self.assertGreater(len(cases), 0, "no cases in %s" % CASES_DIR)
        for c in cases:
            with self.subTest(case=c["name"], file=c["_file"]):
                self.assertIn(c["upstream"], UPSTREAMS)
                self.run_case(c)


def client_text(ingress, r, body):
    """The answer's text as the client's SDK would join it."""
    if r.header("content-type", "").startswith("text/event-stream"):
        out = []
        for ev in parse_sse(body):
            d = ev["data"]
            if not isinstance(d, dict):
                continue
            if ingress == "messages" and d.get("type") == "content_block_delta":
                out.append(d["delta"].get("text", ""))
            elif ingress == "chat":
                for ch in d.get("choices", []):
                    out.append((ch.get("delta") or {}).get("content") or "")
            elif ingress == "responses" and d.get("type") == "response.output_text.delta":
                out.append(d.get("delta", ""))
        return "".join(out)
    d = r.json()
    if ingress == "messages":
        return "".join(b.get("text", "") for b in d.get("content", []) if b.get("type") == "text")
    if ingress == "chat":
        return d["choices"][0]["message"].get("content") or ""
    if ingress == "responses":  # the SDKs' output_text
        return "".join(c.get("text", "") for o in d.get("output", []) if o.get("type") == "message"
                       for c in o.get("content", []) if c.get("type") == "output_text")
    return json.dumps(d)


def test_column_rows(text):
    """The body rows of every Markdown table whose header has a test column."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines[:-1]):
        if not (line.startswith("|") and re.match(r"^\|[-| :]+\|$", lines[i + 1])):
            continue
        if i > 0 and lines[i - 1].startswith("|"):
            continue
        if not any("test" in h.strip().lower() for h in line.strip("|").split("|")):
            continue
        j = i + 2
        while j < len(lines) and lines[j].startswith("|"):
            out.append(lines[j])
            j += 1
    return out


class FidelityTableTest(HapaxTestCase):
    """Each row of the translation tables in docs/providers.md names what
    tests it (a fidelity case `fid:NAME` or a test method `test_x`), and
    what it names exists."""

    def test_rows_name_existing_tests(self):
        with open(PROVIDERS_MD, encoding="utf-8") as f:
            text = f.read()
        case_names = {c["name"] for c in load_cases()}
        sources = ""
        for path in glob.glob(os.path.join(REPO_ROOT, "tests", "**", "*.*"), recursive=True):
            if path.endswith((".py", ".c", ".mjs", ".h")) and "node_modules" not in path:
                with open(path, encoding="utf-8", errors="replace") as f:
                    sources += f.read()
        ref_re = r"`(fid:[A-Za-z0-9_.-]+|test_[A-Za-z0-9_]+)`"
        for row in test_column_rows(text):
            with self.subTest(row=row[:100]):
                self.assertRegex(row, ref_re, "a translation-table row names no test")
        rows = "\n".join(line for line in text.splitlines() if line.startswith("|"))
        refs = re.findall(ref_re, rows)
        self.assertGreater(len(refs), 0, "docs/providers.md names no tests")
        for ref in refs:
            with self.subTest(ref=ref):
                if ref.startswith("fid:"):
                    self.assertIn(ref[4:], case_names, "docs/providers.md names a fidelity case that does not exist")
                else:
                    self.assertRegex(sources, r"\b%s\b" % re.escape(ref),
                                     "docs/providers.md names a test that does not exist")
