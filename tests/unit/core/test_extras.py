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


def test_a_missing_module_may_name_what_to_do_without_it() -> None:
    with pytest.raises(
        ConfigError, match=r"pip install 'streamer\[charts\]' .*; or leave it out: --no-chart$"
    ):
        require(
            "no_such_module_here",
            extra="charts",
            feature="the chart",
            instead="leave it out: --no-chart",
        )
