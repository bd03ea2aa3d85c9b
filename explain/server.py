"""The live browser's HTTP side: the FastAPI app over a `LiveModel` (explain/live.py), and its server.

One LM call runs at a time (a lock: requests queue, at most `queue` of them; one more gets a 503); a client that
disconnects cancels its work (generation stops at the next token; a request still queued never runs). Request sizes are
bounded (`Limits`): texts are counted in tokens, after tokenising (what the model pays for), and too long a text or
too many new tokens gets a 422 that names the limit; a request body over `max_body_bytes` gets a 413 (before it is
read, when its length is declared); a strength that is not a finite number within ±`max_strength` is refused. Only
requests whose Host is this machine's (localhost names and the bound address) are served, so a web page elsewhere
cannot reach the API through DNS rebinding. The server binds 127.0.0.1; `serve_live` refuses any other host unless
`allow_remote=True` (the CLI sets it only when --host is given).
"""
# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request, imported in
# make_app) when they are defined
import asyncio
import ipaddress
import socket
import threading
from dataclasses import asdict
from pathlib import Path

from explain.live import ActivationsRequest, Cancelled, LiveModel, SteerRequest, operators, sae_ref, steer_defaults


def make_app(site: str | Path, live: LiveModel, hosts: list[str] | None = None):
    """The FastAPI app: the API under /api, the static site everywhere else. `hosts`: the Host names served
    (default: localhost names; `serve_live` adds the bound address)."""
    # the web stack is imported when a live server is made, not by every import of explain
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app = FastAPI(title="saesteer live browser", docs_url=None, redoc_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(dict.fromkeys([*LOCAL_HOSTS, *(hosts or [])])))

    app.add_middleware(BodyCap, limit=live.limits.max_body_bytes, timeout=live.limits.body_timeout_s)

    @app.exception_handler(RequestValidationError)
    async def readable(request: Request, exc: RequestValidationError):
        """One line per bad field ('strength: Input should be a finite number'), not pydantic's JSON."""
        lines = [_readable(e) for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(lines)}, status_code=422)

    async def call(request: Request, fn, *args):
        """Run an LM call in a worker thread, within the queue bound; if the client disconnects, tell the work
        to stop (at the next token, or before it starts when it is still waiting for the model)."""
        if not live.slots.acquire(blocking=False):
            raise HTTPException(status_code=503, detail=f"busy: {live.limits.queue} model requests are running or "
                                                        "waiting; try again in a moment")
        cancel = threading.Event()
        try:
            work = asyncio.ensure_future(run_in_threadpool(fn, *args, cancel=cancel))
            while not work.done():
                await asyncio.wait({work}, timeout=0.1)
                if not work.done() and not cancel.is_set() and await request.is_disconnected():
                    cancel.set()
            return work.result()
        except (ValueError, TypeError) as e:  # bad input: say what is wrong, keep serving
            raise HTTPException(status_code=422, detail=str(e)) from None
        except Cancelled:  # nobody is listening; 499 (nginx's "client closed request") for the log
            return JSONResponse({"detail": "cancelled: the client disconnected"}, status_code=499)
        finally:
            live.slots.release()

    @app.get("/api/health")
    def health() -> dict:
        return {"model": live.name, "sae": sae_ref(live.sae), "hook_point": live.hook, "d_sae": live.sae.d_sae,
                "operators": list(operators()), "steer_defaults": steer_defaults(), "limits": asdict(live.limits),
                "saved": sorted(live.saved)}

    @app.post("/api/activations")
    async def activations(req: ActivationsRequest, request: Request):
        return await call(request, live.activations, req.text, req.feature)

    @app.post("/api/steer")
    async def steer_(req: SteerRequest, request: Request):
        return await call(request, live.steer, req)

    @app.get("/api/nearest/{feature}")
    def nearest(feature: int) -> list:
        try:
            return live.nearest(feature)
        except ValueError as e:
            raise HTTPException(status_code=422, detail=str(e)) from None

    app.mount("/", StaticFiles(directory=str(site), html=True), name="site")
    return app


def _readable(error: dict) -> str:
    """One pydantic error as a line: 'strength: Input should be a finite number', 'body is not valid JSON …'."""
    if error.get("type") == "json_invalid":
        at = next((p for p in error["loc"] if isinstance(p, int)), None)
        why = (error.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON{f' at character {at}' if at is not None else ''}" + \
            (f" ({why})" if why else "") + "; send a JSON object such as {\"text\": \"…\"}"
    return f"{'.'.join(str(p) for p in error['loc'] if p != 'body') or 'body'}: {error['msg']}"


class BodyCap:
    """ASGI middleware: a POST body is read whole before the app sees it (it is small), within `timeout` seconds
    (else 408: a client that declares a body and never sends it cannot hold a connection), and one over `limit`
    bytes gets a 413 — before it is read when its length is declared. (Plain ASGI rather than @app.middleware:
    Starlette's BaseHTTPMiddleware hides the client's disconnect from the endpoint, which cancellation needs.)"""

    def __init__(self, app, limit: int, timeout: float = 10.0):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        size = dict(scope["headers"]).get(b"content-length")
        if size is not None and size.isdigit() and int(size) > self.limit:
            return await _reply(scope, receive, send, 413, f"request body over {self.limit} bytes")
        loop = asyncio.get_running_loop()
        chunks, more, deadline = [], True, loop.time() + self.timeout
        while more:
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return await _reply(scope, receive, send, 408, f"the request body did not arrive within "
                                                                f"{self.timeout:g} s")
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
            if sum(map(len, chunks)) > self.limit:
                return await _reply(scope, receive, send, 413, f"request body over {self.limit} bytes")
        return await self.app(scope, _replay(b"".join(chunks), receive), send)


async def _reply(scope, receive, send, status: int, detail: str) -> None:
    from starlette.responses import JSONResponse

    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def _replay(body: bytes, receive):
    """An ASGI receive that gives `body` once, then the real receive's messages (the client's disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_live(site: str | Path, live: LiveModel, host: str = "127.0.0.1", port: int = 8000,
               allow_remote: bool = False):
    """A uvicorn server for the app (call .run(), or run it in a thread and set .should_exit to stop); pass
    `.run(sockets=[bind(host, port)])` to serve on a socket bound before the model loaded."""
    import uvicorn  # as fastapi above: only a live server needs it

    site = Path(site)
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} has no index.html; build it first with `python -m explain.browse build`")
    if not is_loopback(host) and not allow_remote:
        raise ValueError(f"Refusing to serve the live browser on {host}: it runs the model for anyone who can reach "
                         "it. Pass --host explicitly to bind a non-loopback address.")
    config = uvicorn.Config(make_app(site, live, [host]), host=host, port=port, log_level="warning", workers=1)
    return uvicorn.Server(config)


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening socket on host:port, made before anything slow (the model load): a busy port fails at once,
    and port 0 gives a free port whose number `sock.getsockname()[1]` tells."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValueError(f"Cannot listen on {host}:{port} ({e.strerror}); another server holds it: pass another "
                         "--port, or --port 0 for a free one.") from None
    sock.listen(128)
    return sock

