"""Contract-test app: answers under the URL prefix and on the port the platform's environment names.

CARTA's launch gives SKAHA_SESSION_URL_PATH and CARTA_PORT; Firefly's gives baseURL (port 8080);
a contributed app serves "/" on 5000. GET <prefix>/... answers a JSON report; <prefix>/ws echoes
WebSocket messages; <prefix>/stream sends one line at once and then holds the response open (no
Content-Length) until the client goes, so a gateway that buffered it would deliver nothing; anything outside
the prefix is a 404 (so tests see whether a prefix was kept).
"""

import asyncio
import json
import os
import sys

from aiohttp import WSMsgType, web

if os.environ.get("SKAHA_SESSION_URL_PATH"):
    KIND, PREFIX, PORT = "carta", os.environ["SKAHA_SESSION_URL_PATH"].rstrip("/"), int(os.environ["CARTA_PORT"])
elif os.environ.get("baseURL"):  # noqa: SIM112 (Firefly's own variable name)
    KIND, PREFIX, PORT = "firefly", os.environ["baseURL"].rstrip("/"), 8080  # noqa: SIM112
else:
    KIND, PREFIX, PORT = "contributed", "", 5000


async def report(request: web.Request) -> web.StreamResponse:
    if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
        return web.Response(status=404, text=f"outside the prefix {PREFIX!r}: {request.path}\n")
    if request.path.rstrip("/") == PREFIX + "/ws":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(f"echo: {message.data}")
        return ws
    if request.path.rstrip("/") == PREFIX + "/stream":
        stream = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await stream.prepare(request)
        await stream.write(b"first line\n")
        await asyncio.sleep(60)  # the rest never comes in time: only an unbuffered first line reaches the client
        await stream.write(b"last line\n")
        return stream
    body = {
        "app": "skaha-emulator contract-test app (not CARTA, not Firefly)",
        "kind": KIND,
        "path": request.path,
        "x_forwarded_proto": request.headers.get("X-Forwarded-Proto"),
        "uid": os.getuid(),
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("SKAHA_", "CARTA_", "UWS_", "skaha_"))
            or k in ("baseURL", "HOME", "CADC_SSO_COOKIE_NAME", "PROPS_FIREFLY_OPTIONS")
        },
    }
    return web.Response(text=json.dumps(body), content_type="application/json")


app = web.Application()
app.router.add_route("*", "/{tail:.*}", report)
print(f"contract-test app ({KIND}) on :{PORT} under {PREFIX or '/'}", file=sys.stderr, flush=True)
web.run_app(app, host="0.0.0.0", port=PORT, print=None)
