"""Clients for Kafka and Redis built from settings, credentials included, in one place.

Secrets are read from their ``SecretStr`` only here, at the moment a client is made.
"""

from __future__ import annotations

from typing import Any

import redis
from aiokafka.helpers import create_ssl_context

from streamer.config.settings import KafkaSettings, RedisSettings

__all__ = ["faust_credentials", "kafka_options", "rdkafka_config", "redis_client"]


def kafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if "SSL" in kafka.security_protocol:
        options["ssl_context"] = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def rdkafka_config(kafka: KafkaSettings) -> dict[str, str]:
    """The same brokers, protocol and credentials as :func:`kafka_options`, as librdkafka's
    configuration (confluent-kafka producers and admin clients). Without ``ssl_cafile``, TLS
    trusts the system's CA bundle, as aiokafka's default context does: ``probe`` has
    librdkafka look in the usual system locations, whichever OpenSSL it was built with."""
    config = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol.lower(),
    }
    if "SSL" in kafka.security_protocol:
        config["ssl.ca.location"] = str(kafka.ssl_cafile) if kafka.ssl_cafile else "probe"
    if kafka.security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = kafka.sasl_mechanism
        if kafka.sasl_username is not None:
            config["sasl.username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            config["sasl.password"] = kafka.sasl_password.get_secret_value()
    return config


def faust_credentials(kafka: KafkaSettings) -> Any:
    """faust's ``broker_credentials`` for the settings (None for plaintext brokers)."""
    import faust

    options = kafka_options(kafka)
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=kafka.sasl_mechanism,
            ssl_context=options.get("ssl_context"),
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


def redis_client(settings: RedisSettings, *, timeout_s: float = 5.0) -> redis.Redis:
    password = settings.password.get_secret_value() if settings.password else None
    extra: dict[str, Any] = {}
    if settings.tls_cafile is not None:
        extra["ssl_ca_certs"] = str(settings.tls_cafile)
    return redis.Redis.from_url(
        settings.url,
        password=password,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        **extra,
    )
