"""``serve`` terminating TLS itself: config [tls] names a certificate and key.

The certificate is self-signed, made here with ``cryptography`` for 127.0.0.1, and the
test's client trusts exactly it — as a peer would trust a real CA's certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .harness import REPO, init_node, run_cli


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(mode=0o700)
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def enable_tls(data: Path) -> Path:
    cert, _ = self_signed(data / "tls")
    config = data / "config.toml"
    text = config.read_text()
    text = text.replace('# cert = "tls/fullchain.pem"', 'cert = "tls/fullchain.pem"')
    text = text.replace('# key = "tls/privkey.pem"', 'key = "tls/privkey.pem"')
    config.write_text(text)
    return cert


def get(url: str, ctx: ssl.SSLContext | None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_terminates_tls(tmp_path: Path) -> None:
    data, port = init_node(tmp_path / "tlsnode")
    cert = enable_tls(data)
    assert run_cli("config", "check", "--data", str(data)).returncode == 0
    trust = ssl.create_default_context(cafile=str(cert))
    log = open(tmp_path / "tlsnode.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--data", str(data)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "tlsnode.log").read_text()
            try:
                status, body = get(url + "/healthz", trust)  # hostname checked too
                break
            except OSError:
                assert time.monotonic() < deadline, "TLS node never answered"
                time.sleep(0.1)
        assert status == 200 and json.loads(body)["name"] == f"127.0.0.1:{port}"
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(url + "/healthz", ssl.create_default_context())
        with pytest.raises(OSError):  # plain http on the TLS port is refused
            get(f"http://127.0.0.1:{port}/healthz", None)
        # The CLI reaches the admin API over TLS, trusting the node's own certificate.
        info = run_cli("status", "--data", str(data), "--json")
        assert info.returncode == 0, info.stderr
        assert info.json()["running"] is True and info.json()["url"] == url
        assert get(url + "/.well-known/peerforum", trust)[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        log.close()
    assert code == 0
    assert "Traceback" not in (tmp_path / "tlsnode.log").read_text()


def test_missing_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    data, _ = init_node(tmp_path / "badtls")
    enable_tls(data)
    (data / "tls" / "fullchain.pem").unlink()
    served = run_cli("serve", "--data", str(data))
    assert served.returncode == 3, served.stderr
    assert "tls.cert" in served.stderr and "Traceback" not in served.stderr
