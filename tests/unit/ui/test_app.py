"""The search page's server without a store: the page and its form's parsing, and refusals as
short JSON messages (an oversized upload is refused before it is read whole, a form with two
queries or a malformed filter says why)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streamer.config.settings import FetchSettings
from streamer.ui.app import _filters, build_app
from streamer.ui.search import PageError, PageQuery


class Answering:
    """Stands in for :class:`~streamer.ui.search.PageSearch`: says what it was asked."""

    def __init__(self, max_bytes: int) -> None:
        self.settings = SimpleNamespace(fetch=FetchSettings(max_bytes=max_bytes))
        self.topologies: dict[str, Any] = {}
        self.asked: list[PageQuery] = []

    async def search(self, query: PageQuery) -> dict[str, Any]:
        query.check()
        self.asked.append(query)
        return {"hits": [], "topology": query.topology, "collection": "c", "via": "v"}


def call(search: Answering, form: aiohttp.FormData) -> tuple[int, dict[str, Any]]:
    async def go() -> tuple[int, dict[str, Any]]:
        app = build_app(search, thumbnails=None)  # type: ignore[arg-type]
        async with TestClient(TestServer(app)) as client:
            page = await client.get("/")
            assert page.status == 200 and "streamer" in await page.text()
            answer = await client.post("/api/search", data=form)
            return answer.status, await answer.json()

    return asyncio.run(go())


def form(**fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        if isinstance(value, bytes):
            data.add_field(name, value, filename="upload.jpg", content_type="image/jpeg")
        else:
            data.add_field(name, value)
    return data


def test_a_file_input_left_empty_is_no_photo() -> None:
    search = Answering(1_000_000)
    data = form(topology="image", id="photo-cat")
    data.add_field("image", b"", filename="", content_type="application/octet-stream")
    status, body = call(search, data)
    assert status == 200, body
    assert (search.asked[0].asset_id, search.asked[0].image) == ("photo-cat", None)


def test_a_form_becomes_one_query() -> None:
    search = Answering(1_000_000)
    status, body = call(search, form(topology="image", text="cats", top_k="5",
                                      filter="tenant=acme\nalbum=a, album=b"))  # fmt: skip
    assert status == 200, body
    (query,) = search.asked
    assert (query.topology, query.text, query.top_k) == ("image", "cats", 5)
    assert query.filter == {"tenant": "acme", "album": ["a", "b"]}


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"topology": "image", "text": "cats", "id": "a"}, "one of: a text, a photo"),
        ({"topology": "image"}, "one of: a text, a photo"),
        ({"topology": "image", "text": "cats", "top_k": "many"}, "top-k is a number"),
        ({"topology": "image", "text": "cats", "top_k": "500"}, "top-k goes from 1 to 100"),
        ({"topology": "image", "text": "cats", "filter": "no equals sign"}, "key=value"),
    ],
)
def test_a_bad_form_is_a_message(fields: dict[str, str], says: str) -> None:
    status, body = call(Answering(1_000_000), form(**fields))
    assert status == 400 and says in body["error"], body


def test_an_upload_over_the_cap_is_refused_with_a_message() -> None:
    status, body = call(Answering(10_000), form(topology="image", image=b"x" * 200_000))
    assert status == 413 and "too large" in body["error"], body


def test_filters_parse_lines_and_commas() -> None:
    assert _filters("") == {}
    assert _filters(" lang = en , lang=fr\nsource=web ") == {"lang": ["en", "fr"], "source": "web"}
    with pytest.raises(PageError, match="key=value"):
        _filters("=x")
