"""The search page's web server (aiohttp): the page, its JSON API and thumbnails.

``GET /`` the page; ``GET /api/topologies`` what can be searched (and filtered on);
``POST /api/search`` a multipart form (``topology``, one of ``text``, ``id`` or an ``image``
file, ``top_k``, ``filter`` as ``key=value`` lines) answered with the hits; ``GET /thumb?
topology=T&id=ID`` a small JPEG of a stored photo (only stored rows' URIs are ever fetched,
through the upload guards). The trainer: ``POST /api/trainer`` (the search form, or
``classifier``: a saved one's name) starts a session and answers its first round; ``POST
/api/trainer/{session}/train`` (``{"labels": {id: -1..1}}``), ``.../reset`` and ``.../save``
(``{"name", "replace"}``); ``GET /api/classifiers`` the saved ones. A refusal is a 4xx with
``{"error": ...}`` saying why; an upload over ``STREAMER_FETCH_MAX_BYTES`` is refused before
it is read whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from streamer.core.errors import StageError, TransientError
from streamer.trainer import ClassifierError
from streamer.ui.page import PAGE
from streamer.ui.search import PageError, PageQuery, PageSearch
from streamer.ui.thumbnails import Thumbnails
from streamer.ui.trainer import PageTrainer

__all__ = ["build_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as a short JSON message: never a trace on the page."""
    try:
        return await handler(request)
    except (PageError, ClassifierError) as exc:
        return _error(400, str(exc))
    except TransientError as exc:
        return _error(503, f"{exc}: try again")
    except web.HTTPRequestEntityTooLarge as exc:
        return _error(413, f"the upload is too large: {exc.text or 'over the limit'}")
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("page request failed", extra={"path": request.path})
        return _error(500, f"the server failed on this request ({type(exc).__name__})")


def _filters(text: str) -> dict[str, Any]:
    """``key=value`` lines (or comma-separated) as a filter; a key given twice takes either."""
    found: dict[str, list[str]] = {}
    for part in text.replace(",", "\n").splitlines():
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise PageError(f"a filter is key=value, not {part.strip()!r}")
        found.setdefault(key.strip(), []).append(value.strip())
    return {k: v[0] if len(v) == 1 else v for k, v in found.items()}


async def _query_of(request: web.Request) -> PageQuery:
    """The form (multipart, or URL-encoded without a photo) as a query."""
    if request.content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise PageError(f"send the search as a form, not {request.content_type}")
    posted = await request.post()  # capped at client_max_size: over it, 413
    form: dict[str, Any] = {}
    for name, value in posted.items():
        # a file, or the bytes of a part with no file name (a file input left empty)
        data = value.file.read() if isinstance(value, web.FileField) else value
        if isinstance(data, bytes | bytearray):
            if data:
                form[name] = bytes(data) if name == "image" else data.decode(errors="replace")
        else:
            form[name] = str(data).strip()
    try:
        top_k = int(form.get("top_k") or 12)
    except ValueError:
        raise PageError("top-k is a number") from None
    return PageQuery(
        topology=form.get("topology", ""),
        text=form.get("text") or None,
        asset_id=form.get("id") or None,
        image=form.get("image"),
        top_k=top_k,
        filter=_filters(form.get("filter", "")),
    )


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise PageError("send JSON") from None
    if not isinstance(body, dict):
        raise PageError("send a JSON object")
    return body


def build_app(
    search: PageSearch, thumbnails: Thumbnails, trainer: PageTrainer | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[_refusals], client_max_size=search.settings.fetch.max_bytes + 64 * 1024
    )

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def topologies(_: web.Request) -> web.Response:
        return web.json_response(
            [
                {"name": t.name, "media_type": t.media_type, "fields": list(t.metadata_fields)}
                for t in search.topologies.values()
            ]
        )

    async def do_search(request: web.Request) -> web.Response:
        query = await _query_of(request)
        return web.json_response(await search.search(query), dumps=lambda v: json.dumps(v))

    async def thumbnail(request: web.Request) -> web.Response:
        topology = search.topology(request.query.get("topology", ""))
        asset_id = request.query.get("id", "")
        loop = asyncio.get_running_loop()
        row = await loop.run_in_executor(None, search.row, topology, asset_id)
        if not row.uri:
            raise PageError(f"{asset_id!r} has no photo")
        try:
            data = await loop.run_in_executor(None, thumbnails.of, row.uri)
        except StageError as exc:
            raise PageError(f"no thumbnail of {asset_id!r}: {exc.stage}: {exc.cause}") from exc
        return web.Response(
            body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=300"}
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def train_start(request: web.Request) -> web.Response:
        assert trainer is not None
        classifier = None
        if request.content_type == "application/json":
            body = await _json(request)
            query = PageQuery(topology=str(body.get("topology", "")))
            classifier = str(body.get("classifier") or "") or None
        else:
            query = await _query_of(request)
        return web.json_response(await trainer.start(query, classifier))

    async def train_step(request: web.Request) -> web.Response:
        assert trainer is not None
        session, step = request.match_info["session"], request.match_info["step"]
        body = await _json(request)
        if step == "train":
            labels = body.get("labels", {})
            if not isinstance(labels, dict):
                raise PageError("labels map ids to numbers from -1 to +1")
            return web.json_response(await trainer.train(session, labels))
        if step == "reset":
            return web.json_response(await trainer.reset(session))
        if step == "save":
            name = str(body.get("name", "")).strip()
            saved = await trainer.save(session, name, replace=bool(body.get("replace")))
            return web.json_response(saved)
        raise web.HTTPNotFound()

    async def classifiers(_: web.Request) -> web.Response:
        assert trainer is not None
        return web.json_response(await trainer.classifiers())

    async def attach(request: web.Request) -> web.Response:
        assert trainer is not None
        name, step = request.match_info["name"], request.match_info["step"]
        if step not in ("attach", "detach"):
            raise web.HTTPNotFound()
        return web.json_response(await trainer.attach(name, step == "attach"))

    app.router.add_get("/", page)
    if trainer is not None:
        app.router.add_post("/api/trainer", train_start)
        app.router.add_post("/api/trainer/{session}/{step}", train_step)
        app.router.add_get("/api/classifiers", classifiers)
        app.router.add_post("/api/classifiers/{name}/{step}", attach)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/topologies", topologies)
    app.router.add_post("/api/search", do_search)
    app.router.add_get("/thumb", thumbnail)
    return app
