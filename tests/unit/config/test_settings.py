import json
from pathlib import Path

import pytest

from streamer.config.settings import load_settings
from streamer.core.errors import ConfigError


def test_defaults_without_environment(tmp_path: Path) -> None:
    settings = load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path)})
    assert settings.kafka.uploads_topic == "media.uploads"
    assert settings.redis.url.startswith("redis://")
    assert settings.batching.max_batch_size is None


def test_environment_is_read_per_concern(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "STREAMER_STACK_STATE_DIR": str(tmp_path),
            "STREAMER_KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "STREAMER_KAFKA_PARTITIONS": "12",
            "STREAMER_BATCH_MAX_BATCH_SIZE": "8",
            "STREAMER_FETCH_MEDIA_ROOTS": f"{tmp_path}/a:{tmp_path}/b",
            "STREAMER_MILVUS_TOKEN": "s3cret",
        }
    )
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.partitions == 12
    assert settings.batching.max_batch_size == 8
    assert settings.fetch.media_roots == (tmp_path / "a", tmp_path / "b")
    assert settings.milvus.token is not None
    assert "s3cret" not in repr(settings)


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path)})
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka.partitions = 3  # type: ignore[misc]


def test_bad_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="STREAMER_KAFKA_PARTITIONS"):
        load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path), "STREAMER_KAFKA_PARTITIONS": "0"})


def test_replication_is_a_setting_and_isr_cannot_exceed_it(tmp_path: Path) -> None:
    base = {"STREAMER_STACK_STATE_DIR": str(tmp_path)}
    assert load_settings(base).kafka.replication_factor == 1
    kafka = load_settings(
        {
            **base,
            "STREAMER_KAFKA_REPLICATION_FACTOR": "3",
            "STREAMER_KAFKA_MIN_INSYNC_REPLICAS": "2",
        }
    ).kafka
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)
    with pytest.raises(ConfigError, match=r"STREAMER_KAFKA_\*: .*exceeds replication_factor"):
        load_settings({**base, "STREAMER_KAFKA_MIN_INSYNC_REPLICAS": "2"})


def test_stack_file_fills_addresses_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "kafka_bootstrap": "127.0.0.1:1111",
                "redis_url": "redis://127.0.0.1:2222/0",
                "milvus_uri": "http://127.0.0.1:3333",
            }
        )
    )
    env = {"STREAMER_STACK_STATE_DIR": str(tmp_path)}
    settings = load_settings(env)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1111"
    assert settings.milvus.uri == "http://127.0.0.1:3333"
    override = load_settings({**env, "STREAMER_MILVUS_URI": "http://milvus:19530"})
    assert override.milvus.uri == "http://milvus:19530"
    assert override.redis.url == "redis://127.0.0.1:2222/0"


def test_credentials_are_secrets_never_shown(tmp_path: Path) -> None:
    from streamer.config.connections import faust_credentials, kafka_options

    settings = load_settings(
        {
            "STREAMER_STACK_STATE_DIR": str(tmp_path),
            "STREAMER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "STREAMER_KAFKA_SASL_USERNAME": "svc",
            "STREAMER_KAFKA_SASL_PASSWORD": "kafka-pw-123",
            "STREAMER_REDIS_PASSWORD": "redis-pw-456",
            "STREAMER_MILVUS_TOKEN": "milvus-tok-789",
        }
    )
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("kafka-pw-123", "redis-pw-456", "milvus-tok-789"):
        assert secret not in shown
    options = kafka_options(settings.kafka)
    assert options["sasl_plain_password"] == "kafka-pw-123"
    assert options["security_protocol"] == "SASL_SSL"
    assert options["ssl_context"] is not None
    assert type(faust_credentials(settings.kafka)).__name__ == "SASLCredentials"
    assert (
        faust_credentials(load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path)}).kafka) is None
    )
