"""The Gateway protocol over Caddy's admin API.

The admin API listens on a unix socket in a folder shared with the service (it is
never on a network a session can reach). `_request` is the only function that
speaks HTTP to Caddy. The table holds one route per session type (see base.py);
a session that does not exist, or whose container is not running, gets a 404 from
the error routes, and one whose app does not answer yet a 502.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from emulator.errors import Unavailable
from emulator.gateway.base import (
    COOKIE_PREFIX,
    INTERNAL_PORT,
    PORTAL_COOKIE,
    PROBE_HEADER,
    SESSION_HEADER,
    SESSION_HOST_HEADER,
    SESSION_ID_PATTERN,
    VISIT_COOKIE,
    VISIT_PATH,
    GatewayTable,
    TypeRoute,
)
from emulator.session_hosts import SessionHosts

ADMIN_HOST = "gateway-admin"  # the only Host the admin API accepts (see images/gateway/bootstrap.json)
ADMIN_SOCKET_FOLDER_IN_GATEWAY = "/run/caddy-admin"  # the host's Settings.gateway_dir, bind-mounted
ADMIN_SOCKET_IN_GATEWAY = f"{ADMIN_SOCKET_FOLDER_IN_GATEWAY}/admin.sock"
SERVER = "gateway"
LISTEN_PORT = 8080  # published: HTTPS with `--tls`
DATA_IN_GATEWAY = "/data"  # Caddy's data (its internal CA): the host's Settings.gateway_data, bind-mounted
ACCESS_LOG_IN_GATEWAY = f"{ADMIN_SOCKET_FOLDER_IN_GATEWAY}/access.log"  # the host's Layout.access_log
ACCESS_LOGGER = f"http.log.access.{SERVER}"  # Caddy names a server's access logger after its default_logger_name
# Caddy rolls the file itself (the service only reads it): at ACCESS_LOG_ROLL_MB it becomes access-<time>.log.gz,
# and the newest ACCESS_LOG_KEEP of those are kept. A line holds no path, host, method or header, nothing a client
# sizes: about 200 bytes, never much over 300. So a file holds 35,000 requests or more, a roll every 3 min or more
# at 200 requests/s, and little on disk (a flood's lines compress 25-fold). A file rolled more than once between
# two reads is read from the rolled files (gateway/rolled_logs.py); lines are lost only once the roller has removed
# one unread: ACCESS_LOG_KEEP + 1 whole files (over 200,000 requests) between two reads, 2 s apart.
ACCESS_LOG_ROLL_MB = 10
ACCESS_LOG_KEEP = 5

# Caddy must drop an idle upstream connection before the upstream does, or a request sent on a
# connection the upstream is closing fails with a 502. The service (uvicorn) keeps idle connections
# for 120 s; apps in sessions are often Node.js (5 s by default).
API_IDLE_TIMEOUT = "60s"
SESSION_IDLE_TIMEOUT = "4s"
# How long Caddy waits for a session's TCP connection before answering 502 itself. A dial on the host's own
# bridge takes microseconds, or hangs: on Podman a reused address keeps its last container's MAC in the
# gateway's neighbour table for seconds (Docker derives MACs from addresses; netavark does not). It must
# stay below the readiness probe's read timeout (core/probe.py), which takes a wait past it as an app
# that accepted the connection: a hung dial must come back as the gateway's own 502, "not yet".
SESSION_DIAL_TIMEOUT_SECONDS = 1.0


# Session pages may be framed only by this site, their content types are not sniffed, their URLs
# (which carry the session id, the notebook's token) never leave this site in a Referer, and they never
# set one of the platform's cookies (for a parent domain, say, where the portal would get it too).
SESSION_SECURITY_HEADERS: dict[str, Any] = {
    "handler": "headers",
    "response": {
        "set": {
            "X-Frame-Options": ["SAMEORIGIN"],
            "X-Content-Type-Options": ["nosniff"],
            "Referrer-Policy": ["same-origin"],
        },
        "replace": {"Set-Cookie": [{"search_regexp": f"^\\s*(__Host-)?{COOKIE_PREFIX}.*$", "replace": ""}]},
        "deferred": True,
    },
}
# The portal and the API are never framed, by any site: a page that framed the signed-in portal could
# steer a visitor's clicks (and another port of the same host is "same site" to a browser).
PORTAL_SECURITY_HEADERS: dict[str, Any] = {
    "handler": "headers",
    "response": {
        "set": {
            "Content-Security-Policy": ["frame-ancestors 'none'"],
            "X-Frame-Options": ["DENY"],
            "X-Content-Type-Options": ["nosniff"],
            "Referrer-Policy": ["same-origin"],
        },
        "deferred": True,
    },
}
# A client has this long to send a request's headers: connections that trickle them in (two hundred held
# the gateway for a minute) are closed. Bodies are not timed as a whole: an upload may be long, and Go keeps
# that deadline on a WebSocket after the upgrade.
READ_HEADER_TIMEOUT_SECONDS = 10
MAX_API_BODY_BYTES = 1 << 20  # skaha's requests are a few form fields
MAX_HEADER_BYTES = 64 << 10  # CARTA's large cookies need 32 KiB (UWS_HTTP_MAX_HEADERS_SIZE)


# Idle upstream connections kept per backend. Caddy 2.6 fills in its default (32) only when keep_alive is
# left out; naming idle_timeout alone leaves Go's default of 2, so under concurrency almost every request
# opened a new connection (and looked the container's name up again): 0.68x the direct req/s, measured.
IDLE_CONNECTIONS_PER_UPSTREAM = 64


def _keep_alive(idle_timeout: str) -> dict[str, object]:
    return {"idle_timeout": idle_timeout, "max_idle_conns_per_host": IDLE_CONNECTIONS_PER_UPSTREAM}


# No flush_interval: Caddy passes a response on write by write by itself when it has no Content-Length
# (a stream, chunked) or is text/event-stream, and WebSockets are tunnelled. Flushing every write of every
# response as well cost a tenth of the gateway's requests/s, measured.
def _proxy(
    dial: str, headers: dict[str, str] | None = None, idle: str = SESSION_IDLE_TIMEOUT, name_server: str | None = None
) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": dial}],
        "transport": {
            "protocol": "http",
            "keep_alive": _keep_alive(idle),
            "dial_timeout": f"{SESSION_DIAL_TIMEOUT_SECONDS:g}s",
        },
    }
    if name_server is not None:
        handler["transport"]["resolver"] = {"addresses": [f"udp/{name_server}"]}
    if headers:
        handler["headers"] = {"request": {"set": {k: [v] for k, v in headers.items()}}}
    return handler


# The platform's cookies: the portal's sign-in and a session host's visit cookie, "__Host-" prefixed under TLS.
PLATFORM_COOKIE_PATTERN = f"(^|;\\s*)(__Host-)?({re.escape(PORTAL_COOKIE)}|{re.escape(VISIT_COOKIE)})=[^;]*"
PORTAL_COOKIE_PATTERN = f"(^|;\\s*)(__Host-)?{re.escape(PORTAL_COOKIE)}="

ONLY_ITS_OWN_SESSION = "skaha-emulator: this host serves only its own session\n"

# The platform's own credentials (a bearer token, the portal's and the session hosts' cookies) never reach a
# session: its owner must not collect a visiting group member's. Jupyter's "token" scheme passes untouched.
STRIP_PLATFORM_CREDENTIALS: dict[str, Any] = {
    "handler": "headers",
    "request": {
        "delete": [PROBE_HEADER, SESSION_HEADER, SESSION_HOST_HEADER],
        "replace": {
            "Authorization": [{"search_regexp": "(?i)^bearer\\s.*$", "replace": ""}],
            "Cookie": [{"search_regexp": PLATFORM_COOKIE_PATTERN, "replace": ""}],
        },
    },
}

# A browser: it sends fetch metadata on every request to a trustworthy origin (HTTPS, loopback); elsewhere
# the portal's cookie gives it away. Scripts (curl, the canfar client, the service's probes) send neither.
BROWSER: list[dict[str, Any]] = [
    {"header_regexp": {"Sec-Fetch-Mode": {"pattern": "."}}},
    {"header_regexp": {"Cookie": {"pattern": PORTAL_COOKIE_PATTERN}}},
]


def forward_auth(auth_upstream: str, session_id: str, host_id: str | None = None) -> dict[str, Any]:
    """Caddy's forward_auth (as `caddy adapt` writes it): ask the service whether this caller may open
    this session; a 2xx lets the request on, any other answer goes back to the caller as it is.

    `session_id` is the placeholder of the id the route captured from the cleaned path: the session the
    request will reach, whatever its raw path says (`/session/x/MINE/../THEIRS/` reaches THEIRS). `host_id`:
    the placeholder of the session the request's host serves, on a session's own host (its visit cookie
    counts there); on the portal's host the header is taken off whatever the client sent."""
    own_host = {SESSION_HOST_HEADER: [host_id]} if host_id else {}
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": auth_upstream}],
        "rewrite": {"method": "GET", "uri": "/auth/session"},
        "headers": {
            "request": {
                "set": {
                    "X-Forwarded-Method": ["{http.request.method}"],
                    "X-Forwarded-Uri": ["{http.request.uri}"],
                    SESSION_HEADER: [session_id],
                    **own_host,
                },
                # The question is plain HTTP even when the request is a WebSocket upgrade.
                "delete": ["Connection", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version"]
                + ([] if host_id else [SESSION_HOST_HEADER]),
            }
        },
        "handle_response": [{"match": {"status_code": [2]}, "routes": [{"handle": []}]}],
        "transport": {"protocol": "http", "keep_alive": _keep_alive(API_IDLE_TIMEOUT)},
    }


def type_route(
    route: TypeRoute, auth_upstream: str | None = None, hosts: SessionHosts | None = None, on_session_host: bool = False
) -> dict[str, Any]:
    """One session type's route. With `hosts`: on a session's own host (`on_session_host`) it serves only the
    session that host names; on the portal's host it sends browsers to the session's host and serves scripts."""
    name = re.sub(r"[^a-z0-9]", "", route.session_type)
    after = route.path_after.rstrip("/")
    head = f"^{re.escape(route.path_before)}({SESSION_ID_PATTERN}){re.escape(after)}"
    session_id = f"{{http.regexp.{name}.1}}"
    prefix = f"{route.path_before}{session_id}{after}"
    host_id = hosts.id_placeholder if hosts is not None and on_session_host else None
    checks = _host_checks(hosts, session_id, host_id)
    if auth_upstream is not None:  # who is asking, before anything reaches the session
        checks.append({"handle": [forward_auth(auth_upstream, session_id, host_id)]})
    routed = _session_routes(route, name, head, session_id, prefix)
    checks.append({"handle": [_mark_session(session_id), STRIP_PLATFORM_CREDENTIALS, routed]})
    return {
        "@id": f"type-{route.session_type}" + ("-own-host" if on_session_host else ""),
        "match": [{"path_regexp": {"name": name, "pattern": f"{head}(/.*)?$"}}],
        "handle": [{"handler": "subroute", "routes": checks}],
        "terminal": True,
    }


def _mark_session(session_id: str) -> dict[str, Any]:
    """Names the session a request goes to (the id captured from the cleaned path, past every check of the route)
    as the access log's `user_id`, which Caddy 2.6 reads from this placeholder alone: so a line names a session
    only when the request reached it, and never one a refused caller poked (core/activity.py). The map handler
    sets the placeholder when the log asks for it, whatever came of the request."""
    return {"handler": "map", "source": session_id, "destinations": ["{http.auth.user.id}"], "defaults": [session_id]}


def _host_checks(hosts: SessionHosts | None, session_id: str, host_id: str | None) -> list[dict[str, Any]]:
    """What a type's route checks of the request's host first: on a session's own host (`host_id`, the
    placeholder of the id it names) that it is this session's; with session hosts, on the portal's host,
    that it is no browser's."""
    if host_id is not None:
        return [  # a session's host serves that session alone
            {
                "match": [{"not": [{"vars": {session_id: [host_id]}}]}],
                "handle": [_text(404, ONLY_ITS_OWN_SESSION)],
                "terminal": True,
            }
        ]
    if hosts is None:
        return []
    # Browsers open a session on its own host. The Location's host is made of the captured id alone;
    # the request's URI follows it, so nothing in the request can move it off that host.
    return [
        {
            "match": BROWSER,
            "handle": [
                {
                    "handler": "static_response",
                    "status_code": 307,
                    "headers": {"Location": [hosts.origin(session_id) + "{http.request.uri}"]},
                }
            ],
            "terminal": True,
        }
    ]


def _session_routes(route: TypeRoute, name: str, head: str, session_id: str, prefix: str) -> dict[str, Any]:
    """A type's way into the session the path names: the bare prefix redirected to itself with a slash, port
    forwarding under `<prefix>/proxy/<port>/`, and the session's app under the prefix."""
    container = f"{route.container_prefix}{session_id}"
    if route.name_server is not None:
        container += "."  # rooted: the resolver appends no search domain, and asks the name server one question
    forward = {
        "match": [{"path_regexp": {"name": f"{name}fwd", "pattern": f"{head}/proxy/([0-9]{{1,5}})(/.*)?$"}}],
        "handle": [
            {"handler": "rewrite", "strip_path_prefix": f"{prefix}/proxy/{{http.regexp.{name}fwd.2}}"},
            SESSION_SECURITY_HEADERS,
            _proxy(f"{container}:{{http.regexp.{name}fwd.2}}", name_server=route.name_server),
        ],
    }
    # "/session/<type>/<id>" without its trailing slash: relative URLs would resolve one level up.
    # The Location is built from our own prefix and the captured id, never from the request's path,
    # so an encoded path such as "/%2fevil.example/..%2fsession/..." cannot redirect off this host.
    slash = {
        "match": [{"path_regexp": {"name": f"{name}bare", "pattern": f"{head}$"}}],
        "handle": [{"handler": "static_response", "status_code": 308, "headers": {"Location": [f"{prefix}/"]}}],
    }
    main: list[dict[str, Any]] = [SESSION_SECURITY_HEADERS]
    if route.strip_prefix:
        main.append({"handler": "rewrite", "strip_path_prefix": prefix})
    main.append(_proxy(f"{container}:{route.port}", route.request_headers, name_server=route.name_server))
    return {"handler": "subroute", "routes": [slash, forward, {"handle": main}]}


def session_hosts_route(table: GatewayTable, hosts: SessionHosts) -> dict[str, Any]:
    """Everything served at `<id>.<domain>`: that session's routes, and the step that turns the portal's
    sign-in ticket into the host's own visit cookie; nothing of the portal or the API."""
    host_id = hosts.id_placeholder
    auth = table.api_upstream if table.auth else None
    routes: list[dict[str, Any]] = []
    if table.auth:
        routes.append(
            {
                "match": [{"path": [VISIT_PATH]}],
                "handle": [
                    {"handler": "rewrite", "uri": "/auth/visit?{http.request.uri.query}"},
                    _proxy(table.api_upstream, {SESSION_HOST_HEADER: host_id}, idle=API_IDLE_TIMEOUT),
                ],
                "terminal": True,
            }
        )
    routes += [type_route(r, auth, hosts, on_session_host=True) for r in table.routes]
    routes.append({"handle": [_text(404, ONLY_ITS_OWN_SESSION)]})
    return {
        "@id": "session-hosts",
        "match": [{"host": [f"*.{hosts.domain}"]}],
        "handle": [{"handler": "subroute", "routes": routes}],
        "terminal": True,
    }


# Every answer the gateway makes itself (no route, no session, no answer from the session) carries
# this header, so a readiness probe sent through the gateway knows the session's app did not answer.
OWN_ANSWER = "X-Skaha-Emulator-Gateway"


def _text(status: int | str, body: str) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"], OWN_ANSWER: ["1"]},
        "body": body,
    }


def full_config(gateway_table: GatewayTable) -> dict[str, Any]:
    """The whole configuration: session routes (checked with the service when `auth`), the API, the portal;
    served on the published port (HTTPS from Caddy's internal CA for `tls_names`, when given) and on the
    internal one. With session hosts, the published port serves each session at its own host; the internal
    port (the service's probes, sessions' own requests: never a browser) serves them by path alone."""
    api_upstream, routes, tls_names = gateway_table.api_upstream, gateway_table.routes, gateway_table.tls_names
    auth = api_upstream if gateway_table.auth else None
    hosts = gateway_table.session_hosts
    table = [type_route(r, auth) for r in routes] + _platform_routes(api_upstream)
    internal: dict[str, Any] = {
        "listen": [f":{INTERNAL_PORT}"],
        "automatic_https": {"disable": True},
        "max_header_bytes": MAX_HEADER_BYTES,
        "read_header_timeout": f"{READ_HEADER_TIMEOUT_SECONDS}s",
        "routes": table,
        "errors": {"routes": _error_routes()},
    }
    public = {**internal, "listen": [f":{LISTEN_PORT}"]}
    if hosts is not None:
        split = [type_route(r, auth, hosts) for r in routes] + table[len(routes) :]
        public["routes"] = [session_hosts_route(gateway_table, hosts), *split]
    apps: dict[str, Any] = {"http": {"servers": {SERVER: public, "internal": internal}}}
    if tls_names:
        # A client that dials an address sends no server name; it gets the certificate of the first
        # address named (the one people are meant to use).
        addresses = [n for n in tls_names if n.replace(".", "").isdigit()]
        public["tls_connection_policies"] = [{"default_sni": addresses[0] if addresses else "127.0.0.1"}]
        apps.update(_tls_apps(tls_names, hosts, api_upstream))
    config: dict[str, Any] = {"admin": {"listen": f"unix/{ADMIN_SOCKET_IN_GATEWAY}", "origins": [ADMIN_HOST]}}
    if gateway_table.access_log:  # the published port only: the internal one carries probes and sessions' own calls
        public["logs"] = {"default_logger_name": SERVER}
        config["logging"] = access_logging()
    return {**config, "apps": apps}


def access_logging() -> dict[str, Any]:
    """Caddy's logging: the published port's access log to its own file, kept out of the gateway's own output.
    A line keeps when, the client's address, the session the request reached, and the answer's status, size and
    duration (core/activity.py reads the session, status and time): no header (no cookie, no token), no URI (the
    files a path names, a notebook's token or a session host's sign-in ticket in a query), and no host or method,
    nothing a client can make long: short lines of a near-fixed size (see ACCESS_LOG_KEEP for what a flood does)."""
    fields = {
        field: {"filter": "delete"}
        for field in ("request>headers", "request>tls", "resp_headers", "request>uri", "request>host", "request>method")
    }
    writer = {
        "output": "file",
        "filename": ACCESS_LOG_IN_GATEWAY,
        "roll_size_mb": ACCESS_LOG_ROLL_MB,
        "roll_keep": ACCESS_LOG_KEEP,
    }
    return {
        "logs": {
            "default": {"exclude": [ACCESS_LOGGER]},
            "access": {
                "writer": writer,
                "encoder": {"format": "filter", "wrap": {"format": "json"}, "fields": fields},
                "include": [ACCESS_LOGGER],
            },
        }
    }


# What the gateway sends to the service: skaha's API, the portal, /metrics, and Cavern's home nodes (vospace.py).
SERVICE_PATHS = (
    "/skaha",
    "/skaha/*",
    "/science-portal",
    "/science-portal/*",
    "/metrics",
    "/ac",
    "/ac/*",
    "/arc/nodes",
    "/arc/nodes/*",
)


def _platform_routes(api_upstream: str) -> list[dict[str, Any]]:
    """After the session types' routes: the API and portal, the front door (to the portal), and the rest."""
    api = {
        "@id": "skaha-api",
        "match": [{"path": list(SERVICE_PATHS)}],
        "handle": [
            PORTAL_SECURITY_HEADERS,
            {
                "handler": "subroute",
                "routes": [
                    {  # a declared body of a million bytes or more is refused before any of it is sent on
                        "match": [{"header_regexp": {"Content-Length": {"pattern": "^[0-9]{7,}$"}}}],
                        "handle": [_text(413, "skaha-emulator: request body too large\n")],
                        "terminal": True,
                    },
                    {
                        "handle": [
                            {"handler": "request_body", "max_size": MAX_API_BODY_BYTES},
                            _proxy(api_upstream, idle=API_IDLE_TIMEOUT),
                        ]
                    },
                ],
            },
        ],
        "terminal": True,
    }
    front_door = {
        "@id": "front-door",
        "match": [{"path": ["/"]}],
        "handle": [{"handler": "static_response", "status_code": 302, "headers": {"Location": ["/science-portal/"]}}],
        "terminal": True,
    }
    not_found = {
        "@id": "not-found",
        "handle": [_text(404, "skaha-emulator: nothing is served at {http.request.uri.path}\n")],
    }
    return [api, front_door, not_found]


def _error_routes() -> list[dict[str, Any]]:
    """What the gateway answers when a session's upstream fails."""
    return [
        {  # The name server does not know the container: no such session, or it is not running.
            "match": [{"vars_regexp": {"{http.error.message}": {"pattern": "no such host"}}}],
            "handle": [_text(404, "skaha-emulator: no running session serves {http.request.uri.path}\n")],
        },
        {
            "handle": [
                _text(
                    "{http.error.status_code}",
                    "skaha-emulator: the session did not answer ({http.error.status_text}); it may still be starting\n",
                )
            ]
        },
    ]


def _tls_apps(tls_names: list[str], hosts: SessionHosts | None, api_upstream: str) -> dict[str, Any]:
    """Caddy's tls and pki apps: certificates for `tls_names` from its own CA (trusted nowhere by itself);
    with session hosts, a certificate for each session's host too."""
    policies: list[dict[str, Any]] = [{"subjects": tls_names, "issuers": [{"module": "internal"}]}]
    automation: dict[str, Any] = {"policies": policies}
    if hosts is not None:
        # A session's host gets its certificate when first asked for (a wildcard under a single label such
        # as *.localhost is refused by browsers and by OpenSSL), and only while the service says that
        # session lives.
        # Only for names under the session domain: a client that sends no server name is named by the address
        # it reached, which must still get the default certificate, not a question to the service.
        policies.append({"subjects": [f"*.{hosts.domain}"], "issuers": [{"module": "internal"}], "on_demand": True})
        automation["on_demand"] = {"ask": f"http://{api_upstream}/auth/tls"}
    return {
        "tls": {"automation": automation, "certificates": {"automate": tls_names}},
        "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
    }


class CaddyGateway:
    def __init__(self, admin_socket: Path) -> None:
        self._socket = admin_socket
        self._lock = asyncio.Lock()

    async def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        # A new connection per call: Caddy restarts its admin endpoint on every config load.
        # A unix socket: no TLS, so no CA bundle to load (which would cost more than the request).
        transport = httpx.AsyncHTTPTransport(uds=str(self._socket), verify=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url=f"http://{ADMIN_HOST}", timeout=10) as client:
                return await client.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the gateway's admin API at {self._socket}: {exc}") from exc

    async def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the admin API answers 200; Unavailable after `timeout` s, whatever it answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        problem = "no answer"
        while loop.time() < deadline:
            try:
                response = await self._request("GET", "/config/")
                if response.status_code == 200:
                    return
                problem = f"it answered {response.status_code}"
            except Unavailable as exc:
                problem = exc.message
            await asyncio.sleep(0.05)
        raise Unavailable(f"the gateway's admin API was not ready within {timeout:.0f} s: {problem}")

    async def load(self, table: GatewayTable) -> None:
        async with self._lock:
            response = await self._request("POST", "/load", full_config(table))
            if response.status_code >= 400:
                raise Unavailable(f"the gateway refused its configuration: {response.text.strip()}")

    async def is_loaded(self, table: GatewayTable) -> bool:
        response = await self._request("GET", f"/config/apps/http/servers/{SERVER}/routes")
        expected = full_config(table)["apps"]["http"]["servers"][SERVER]["routes"]
        return response.status_code == 200 and response.json() == expected
