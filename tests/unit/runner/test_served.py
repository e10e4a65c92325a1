"""Topologies from the user's code, named in STREAMER_TOPOLOGIES or --topologies."""

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.config.settings import load_settings
from streamer.core.errors import ConfigError
from streamer.runner.served import load_topologies, select
from topologies import DEFAULT_TOPOLOGIES, IMAGE, TEXT

USER_MODULE = """
from streamer.testing import fake_topology

SHAPES = fake_topology("shapes", "shape")
BOTH = (fake_topology("one", "one"), fake_topology("two", "two"))
NOT_ONE = 42
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "my_pipelines.py"
    path.write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    sys.modules.pop("my_pipelines", None)


def test_the_default_is_the_built_in_topologies() -> None:
    settings = load_settings({}, use_stack=False)
    assert load_topologies(settings.runtime.topologies) == DEFAULT_TOPOLOGIES


def test_beside_or_instead_of_the_built_in_ones(user_module: Path) -> None:
    beside = load_topologies(["topologies:DEFAULT_TOPOLOGIES", "my_pipelines:SHAPES"])
    assert [t.name for t in beside] == ["image", "text", "video", "shapes"]
    instead = load_topologies(["my_pipelines:BOTH", "topologies:TEXT"])
    assert [t.name for t in instead] == ["one", "two", "text"]
    by_path = load_topologies([f"{user_module}:SHAPES"])
    assert [t.name for t in by_path] == ["shapes"]


def test_the_setting_is_read_and_checked(user_module: Path) -> None:
    env = {"STREAMER_TOPOLOGIES": "my_pipelines:SHAPES, topologies:IMAGE"}
    settings = load_settings(env, use_stack=False)
    assert settings.runtime.topologies == ("my_pipelines:SHAPES", "topologies:IMAGE")
    with pytest.raises(ConfigError, match="STREAMER_TOPOLOGIES"):
        load_settings({"STREAMER_TOPOLOGIES": "no-colon"}, use_stack=False)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("my_pipelines:MISSING", "has no 'MISSING'"),
        ("my_pipelines:NOT_ONE", "neither a Topology"),
        ("no_such_module_here:X", "cannot be imported"),
        ("/nowhere/pipelines.py:X", "no such file"),
        ("just-a-name", "module:NAME"),
    ],
)
def test_bad_names_say_what_is_wrong(user_module: Path, spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_topologies([spec])


def test_names_must_be_distinct_and_selection_keeps_order() -> None:
    with pytest.raises(ConfigError, match="repeat"):
        load_topologies(["topologies:IMAGE", "topologies:DEFAULT_TOPOLOGIES"])
    assert select(DEFAULT_TOPOLOGIES, ["text", "image"]) == (TEXT, IMAGE)
    assert select(DEFAULT_TOPOLOGIES, []) == DEFAULT_TOPOLOGIES
    with pytest.raises(ConfigError, match="unknown topology"):
        select(DEFAULT_TOPOLOGIES, ["audio"])
