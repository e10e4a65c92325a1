import pytest

from streamer.core.errors import ConfigError
from streamer.core.extras import require


def test_an_installed_module_passes() -> None:
    require("json", extra="embedded", feature="anything")


def test_a_missing_module_names_the_extra_to_install() -> None:
    with pytest.raises(
        ConfigError, match=r"the demo's photos needs .*pip install 'streamer\[embedded\]'"
    ):
        require("no_such_module_here", extra="embedded", feature="the demo's photos")
