"""server.tls at start: the binary refuses a bad certificate setup with
FILE:LINE:COL errors naming the file and the dates (docs/tls.md). The library
itself is tested in memory by tests/unit/test_tls.c."""

import os
import re
import subprocess

from harness import REPO_ROOT, HapaxTestCase, free_port


class TlsConfigStartTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.certs = os.path.join(self.workdir, "certs")
        subprocess.run(["sh", os.path.join(REPO_ROOT, "tests", "certs", "gen.sh"), self.certs],
                       check=True)

    def config(self, cert, key, extra=""):
        return self.write_file("tls.yaml", (
            "server:\n"                                          # 1
            "  host: 127.0.0.1\n"                                # 2
            "  port: %d\n"                                       # 3
            "  tls:\n"                                           # 4
            "    enabled: true\n"                                # 5
            "    cert_file: %s\n"                                # 6
            "    key_file: %s\n"                                 # 7
            "%s") % (free_port(), os.path.join(self.certs, cert), os.path.join(self.certs, key), extra))

    def test_bad_certificates_are_start_errors(self):
        path = self.config("expired.pem", "mismatch.key",
                           "    client_auth: require\n")         # 8
        for args in (["--validate"], []):
            with self.subTest(args=args):
                r = self.cli(["--config", path] + args)
                self.assertEqual(r.returncode, 1, r)
                err = r.stderr
                self.assertRegex(err, r"tls\.yaml:6:\d+: server\.tls\.cert_file: the certificate in \S*expired\.pem "
                                      r"expired on 2020-01-01 00:00:00 UTC")
                self.assertRegex(err, r"tls\.yaml:7:\d+: server\.tls\.key_file: \S*mismatch\.key does not match")
                self.assertRegex(err, r"tls\.yaml:8:\d+: server\.tls\.client_auth: client_auth: require needs "
                                      r"client_ca_file")

    def test_good_certificate_is_valid(self):
        r = self.cli(["--config", self.config("chain.pem", "server.key"), "--validate"])
        self.assertEqual(r.returncode, 0, r)
        errors = [ln for ln in r.stderr.splitlines() if re.search(r"tls\.yaml:\d+:\d+:", ln)]
        self.assertEqual(errors, [], r.stderr)
