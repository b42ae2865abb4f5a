"""A bulk endpoint that accepts everything, so the worker's own speed shows.

The local Elasticsearch-API server indexes about 10k documents/s; a worker faster than that
would look exactly as fast as the server. This endpoint answers what the clients ask at start
(cluster info, index template, index exists/create) and acknowledges every bulk item without
parsing documents. Run it as `python -m bench.null_elasticsearch PORT`.
"""

from __future__ import annotations

import sys

from aiohttp import web

# The Python client refuses servers that do not say they are Elasticsearch.
HEADERS = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}
INFO = (b'{"name":"null","cluster_name":"null","version":{"number":"8.15.3",'
        b'"build_flavor":"default"},"tagline":"You Know, for Search"}')
ITEM = b'{"index":{"status":201,"result":"created"}}'


async def bulk(request: web.Request) -> web.Response:
    body = await request.read()
    # Every action line of an index/create bulk request is followed by one source line.
    items = body.count(b"\n") // 2
    payload = b'{"took":0,"errors":false,"items":[' + b",".join([ITEM] * items) + b"]}"
    return web.Response(body=payload, headers=HEADERS)


async def acknowledged(request: web.Request) -> web.Response:
    return web.Response(body=b'{"acknowledged":true}', headers=HEADERS)


async def info(request: web.Request) -> web.Response:
    return web.Response(body=INFO, headers=HEADERS)


def application() -> web.Application:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_get("/", info)
    app.router.add_post("/_bulk", bulk)
    app.router.add_put("/_bulk", bulk)
    app.router.add_post("/{index}/_bulk", bulk)
    app.router.add_put("/{index}/_bulk", bulk)
    app.router.add_route("*", "/{path:.*}", acknowledged)
    return app


if __name__ == "__main__":
    web.run_app(application(), host="127.0.0.1", port=int(sys.argv[1]), print=None,
                access_log=None)
