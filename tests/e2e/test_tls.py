"""TLS end to end: a certificate authority made in the test signs the server's certificate;
gRPC and the bridge's HTTPS serve with it, the bridge's own calls to the server verify it,
osaurus-ctl and the official clients reach it with --tls-ca / verify, and plaintext is refused."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import start_server

from osaurus.client import Tls, open_channel
from osaurus.v1 import model_pb2, model_pb2_grpc


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(subject: str, key, issuer_name, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "osaurus test CA")])
    ca = _certificate("osaurus test CA", ca_key, ca_name, ca_key, ca=True)
    server = _certificate("localhost", server_key, ca_name, ca_key, ca=False)
    other_key = _key()
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's CA")])
    other = _certificate("someone else's CA", other_key, other_name, other_key, ca=True)
    files = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key", "other")}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["other"].write_bytes(other.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(_pem_key(server_key))
    return files


@pytest.fixture(scope="module")
def secure(models_dir, pki, tmp_path_factory):
    server = start_server(
        models_dir,
        tmp_path_factory.mktemp("tls") / "server.log",
        "--no-default-model",
        "--tls-cert",
        str(pki["cert"]),
        "--tls-key",
        str(pki["key"]),
        "--tls-ca",
        str(pki["ca"]),
    )
    yield server
    server.stop()


def test_grpc_over_tls_verifies_and_plaintext_is_refused(secure, pki, model_id) -> None:
    assert secure.http_url.startswith("https://")
    with open_channel(secure.grpc_target, tls=Tls(pki["ca"])) as channel:
        listed = model_pb2_grpc.ModelServiceStub(channel).ListModels(model_pb2.ListModelsRequest())
        assert model_id in [m.id for m in listed.models]
    with pytest.raises(grpc.RpcError) as info, open_channel(secure.grpc_target) as channel:
        model_pb2_grpc.ModelServiceStub(channel).ListModels(
            model_pb2.ListModelsRequest(), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # An authority the server's certificate is not from: refused too.
    with pytest.raises(grpc.RpcError), open_channel(secure.grpc_target, tls=Tls(pki["other"])) as c:
        model_pb2_grpc.ModelServiceStub(c).ListModels(model_pb2.ListModelsRequest(), timeout=5)


def test_https_through_the_bridge_to_grpc_over_tls(secure, pki, model_id) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=pki["ca"])) as http:
        client = openai.OpenAI(
            base_url=f"{secure.http_url}/v1", api_key="x", http_client=http, max_retries=0
        )
        reply = client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
        assert reply.choices[0].message.content
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{secure.http_url}/health")  # the system's authorities don't know ours
    plain = secure.http_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/health", timeout=5)


def test_osaurus_ctl_over_tls(secure, pki) -> None:
    def ctl(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "osaurus.cli.ctl", "--target", secure.grpc_target, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert ctl("status", "--tls-ca", str(pki["ca"])).returncode == 0
    refused = ctl("status")
    assert refused.returncode == 1 and "cannot reach" in refused.stderr


def test_a_certificate_without_its_key_refuses_to_start(pki, tmp_path) -> None:
    from osaurus.child_server import osaurus_command

    result = subprocess.run(
        osaurus_command("serve", "--models-dir", str(tmp_path), "--tls-cert", str(pki["cert"])),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "--tls-cert and --tls-key go together" in result.stderr
