"""librdkafka's configuration says what aiokafka's options say: brokers, protocol, credentials."""

from pathlib import Path

from streamer.config.connections import kafka_options, rdkafka_config
from streamer.config.settings import KafkaSettings


def test_plaintext_names_the_brokers_only() -> None:
    kafka = KafkaSettings(bootstrap_servers="k1:9092,k2:9092")
    assert rdkafka_config(kafka) == {
        "bootstrap.servers": "k1:9092,k2:9092",
        "security.protocol": "plaintext",
    }


def test_sasl_over_tls_carries_the_credentials_and_the_ca(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    kafka = KafkaSettings(
        bootstrap_servers="k1:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="kafka-pw-123",
        ssl_cafile=cafile,
    )
    config = rdkafka_config(kafka)
    assert config == {
        "bootstrap.servers": "k1:9093",
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(cafile),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "kafka-pw-123",
    }


def test_tls_without_a_ca_file_trusts_the_system_bundle() -> None:
    config = rdkafka_config(KafkaSettings(security_protocol="SSL"))
    assert config["security.protocol"] == "ssl"
    assert config["ssl.ca.location"] == "probe"
    assert not any(name.startswith("sasl.") for name in config)


def test_sasl_without_tls_says_what_aiokafka_is_told() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_username="svc",
        sasl_password="pw",
    )
    config, aiokafka = rdkafka_config(kafka), kafka_options(kafka)
    assert config["security.protocol"] == aiokafka["security_protocol"].lower()
    assert config["sasl.mechanism"] == aiokafka["sasl_mechanism"] == "PLAIN"
    assert config["sasl.username"] == aiokafka["sasl_plain_username"] == "svc"
    assert config["sasl.password"] == aiokafka["sasl_plain_password"] == "pw"
    assert "ssl.ca.location" not in config


def test_no_password_no_password_entry() -> None:
    config = rdkafka_config(KafkaSettings(security_protocol="SASL_SSL", sasl_username="svc"))
    assert "sasl.password" not in config
