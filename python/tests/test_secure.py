"""kafka-python's TLS and SASL keywords on the secure test cluster (``scripts/kafka up
--secure``, which ``scripts/test`` starts): SCRAM over TLS with a CA file, and a wrong password
refused at once."""

import os

import pytest

from conftest import read_back
from kprod import KafkaProducer, errors


def client_file(name):
    directory = os.environ.get("KAFKA_SECURE_CLIENT_DIR", "")
    if not directory:
        if os.environ.get("KPROD_REQUIRE_KAFKA") == "1":
            pytest.fail("KAFKA_SECURE_CLIENT_DIR is not set: scripts/kafka up --secure")
        pytest.skip("SKIPPED: needs KAFKA_SECURE_CLIENT_DIR (scripts/kafka up --secure)")
    props = {}
    with open(os.path.join(directory, name)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                props[k.strip()] = v.strip()
    return props


def test_scram_over_tls_with_kafka_python_keywords(bootstrap, topic):
    props = client_file("sasl_ssl-scram-sha-512-admin.properties")
    secure = dict(
        bootstrap_servers=props["bootstrap.servers"].split(","),
        security_protocol="SASL_SSL",
        ssl_cafile=props["ssl.truststore.location"],
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="admin",
    )
    with KafkaProducer(sasl_plain_password="admin-secret", **secure) as p:
        md = p.send(topic, value=b"over tls").get(timeout=30)
    assert md.offset >= 0
    assert [r.value for r in read_back(bootstrap, topic, 1)] == [b"over tls"]
    with pytest.raises(errors.AuthenticationFailedError, match="SASL_AUTHENTICATION_FAILED"):
        KafkaProducer(sasl_plain_password="wrong", **secure)
