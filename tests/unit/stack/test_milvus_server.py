"""The embedded stack's Milvus server: its etcd's own configuration, and the stack choosing it.
The server itself runs in tests/integration/test_stack.py and under every ``BOTH_MILVUS``
integration test."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamer.config.settings import load_settings
from streamer.core.errors import ConfigError
from streamer.stack import embedded
from streamer.stack.milvus_server import etcd_config


def test_the_embedded_etcd_listens_where_it_is_told() -> None:
    config = yaml.safe_load(etcd_config("s", 23001, 23002))
    assert config["listen-peer-urls"] == "http://127.0.0.1:23001"
    assert config["initial-cluster"] == "s=http://127.0.0.1:23001"
    assert config["listen-client-urls"] == config["advertise-client-urls"]
    assert config["listen-client-urls"] == "http://127.0.0.1:23002"


@pytest.mark.parametrize(
    ("kind", "module", "folder"),
    [("lite", "streamer.stack.milvus_lite_server", "milvus"),
     ("server", "streamer.stack.milvus_server", "milvus-server")],
)  # fmt: skip
def test_the_stack_starts_the_milvus_it_is_set_to(
    tmp_path: Path, kind: str, module: str, folder: str
) -> None:
    settings = load_settings({"STREAMER_STACK_MILVUS": kind})
    assert settings.stack.milvus == kind
    _, milvus = embedded._servers(tmp_path, kind)
    argv = milvus.argv(19999)
    assert argv[1:3] == ["-m", module]
    assert argv[argv.index("--data-dir") + 1] == str(tmp_path / folder)
    assert argv[argv.index("--port") + 1] == "19999"


def test_a_server_without_its_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = embedded.require

    def missing(module: str, **kwargs: str) -> None:
        real("no_such_module_here" if module == "milvus" else module, **kwargs)

    monkeypatch.setattr(embedded, "require", missing)
    with pytest.raises(ConfigError, match=r"streamer\[milvus-server\]"):
        embedded._servers(Path("/tmp"), "server")


def test_an_unknown_milvus_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="STREAMER_STACK_MILVUS"):
        load_settings({"STREAMER_STACK_MILVUS": "cluster"})
