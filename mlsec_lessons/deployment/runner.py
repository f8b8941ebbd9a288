"""Running the model server with uvicorn: in a background thread (tests, notebooks) or in the
foreground (``mlsec serve``), with the transport limits of the app's settings.

uvicorn's HTTP parser (httptools) buffers request headers of any size before the app sees the
request: eight connections sending 64 MB of headers grew the server by about 490 MB. With
``max_header_bytes`` set, :class:`HeaderLimitedHttpTools` counts the bytes of a request's line and
headers as they arrive, and past the limit answers 431 and closes the connection; with
``header_timeout_s`` set, it also answers 408 and closes a connection whose request line and
headers do not arrive in time (nor does uvicorn time out a new connection that sends nothing);
``max_connections`` caps open connections (503).
"""
import socket
import threading
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..errors import InvalidParameterError, MLSecError
from .headers import ASGI_HEADERS


class ServerStartError(MLSecError, RuntimeError):
    """uvicorn did not start serving in time (a port in use, a bad certificate...)."""


def _closing_response(status, body):
    """A whole HTTP/1.1 response that closes the connection, with the security headers."""
    return b"".join([b"HTTP/1.1 " + status + b"\r\n", b"content-type: text/plain; charset=utf-8\r\n",
                     b"connection: close\r\n", b"content-length: %d\r\n" % len(body),
                     *(k + b": " + v + b"\r\n" for k, v in ASGI_HEADERS), b"\r\n", body])


RESPONSE_431 = _closing_response(b"431 Request Header Fields Too Large", b"request header fields too large")
RESPONSE_408 = _closing_response(b"408 Request Timeout", b"request headers not received in time")


class HeaderLimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol (the fast C parser) with a limit on a request's line and headers.

    httptools keeps a header of any size until it is complete. This protocol counts the bytes fed
    to the parser while a request's headers are still incomplete and, past ``max_header_bytes``,
    answers 431 and closes the connection: at most the limit plus one read from the socket is ever
    held. A request line and headers that take longer than ``header_timeout_s`` (counted from the
    connection's opening, or from a kept-alive connection's next request) get 408 and the connection
    is closed. :func:`uvicorn_options` makes a subclass with the limits of the app's settings.
    """

    max_header_bytes = 65536
    header_timeout_s = 10.0
    _in_head = False
    _head_bytes = 0
    _head_timer = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._start_head_timer()  # a new connection owes us a request line and headers

    def on_message_begin(self):
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._start_head_timer()

    def on_headers_complete(self):
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc):
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data):
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)  # this read ended inside the headers: all of it counts
        if self._head_bytes > self.max_header_bytes:
            self._in_head = False
            self.logger.warning("request headers over %d bytes: 431, connection closed", self.max_header_bytes)
            self._refuse(RESPONSE_431)

    def _start_head_timer(self):
        if self.header_timeout_s:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _stop_head_timer(self):
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self):
        self._head_timer = None
        if self.transport.is_closing():
            return
        self.logger.warning("request headers not received within %g s: 408, connection closed",
                            self.header_timeout_s)
        self._refuse(RESPONSE_408)

    def _refuse(self, response):
        self._stop_head_timer()
        self.transport.write(response)
        self.transport.close()


def uvicorn_options(app):
    """The uvicorn settings that bound what one client can make the server hold, from the app's
    :class:`~mlsec_lessons.deployment.settings.ServerSettings` (``app.state.settings``; an app
    without them gets the default limits): a :class:`HeaderLimitedHttpTools` with the header limit
    and the header timeout (both ``None``: uvicorn's own httptools protocol, no limit), and at most
    ``max_connections`` open connections."""
    settings = getattr(getattr(app, "state", None), "settings", None)
    header_bytes = 65536 if settings is None else settings.max_header_bytes
    header_timeout = 10.0 if settings is None else settings.header_timeout_s
    options = {"server_header": False, "ws": "none", "http": "httptools",
               "limit_concurrency": 64 if settings is None else settings.max_connections}
    if header_bytes or header_timeout:
        options["http"] = type("HeaderLimitedHttpTools", (HeaderLimitedHttpTools,),
                               {"max_header_bytes": header_bytes or float("inf"), "header_timeout_s": header_timeout})
    return options


class BackgroundServer:
    """Run the server with uvicorn in a background thread, on a free port; a context manager.

    Parameters
    ----------
    app : ASGI app or None
        The app to serve; ``None`` builds one with ``create_app(**create_app_kwargs)``.
    host : str
        The address to listen on (loopback by default: nothing outside the machine can reach it).
    port : int
        0 picks a free port; ``url`` tells which.
    ssl_certfile, ssl_keyfile : path-like or None
        Serve HTTPS with this certificate and key (see :mod:`.tls`).
    startup_timeout : float
        Seconds to wait for uvicorn to start (:class:`ServerStartError` after that).
    **create_app_kwargs
        Passed to :func:`~mlsec_lessons.deployment.app.create_app` when ``app`` is None
        (``settings=...`` or its fields).

    Examples
    --------
    >>> with BackgroundServer(model_dir="models/digits") as server:      # doctest: +SKIP
    ...     print(httpx.get(server.url + "/healthz").status_code)
    200
    """

    def __init__(self, app=None, *, host="127.0.0.1", port=0, ssl_certfile=None, ssl_keyfile=None,
                 startup_timeout=30.0, **create_app_kwargs):
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise InvalidParameterError("give both ssl_certfile and ssl_keyfile, or neither")
        if app is None:
            from .app import create_app

            app = create_app(**create_app_kwargs)
        self.app = app
        self.host, self.port = host, port
        self.ssl_certfile, self.ssl_keyfile = ssl_certfile, ssl_keyfile
        self.startup_timeout = startup_timeout
        self._server = self._thread = self._socket = None

    @property
    def url(self):
        scheme = "https" if self.ssl_certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self):
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.host, self.port))  # port 0: the OS picks a free port, no race
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5,
                                ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                                **uvicorn_options(self.app))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"mlsec-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"the server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self):
        """Ask uvicorn to exit, wait for its thread, and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(host="127.0.0.1", port=8000, tls=False, cert=None, key=None, **create_app_kwargs):
    """Run the server in the foreground (``mlsec serve``) until interrupted.

    ``tls=True`` without ``cert``/``key`` generates a self-signed certificate in the cache and
    prints where, so a client can trust exactly it (``curl --cacert``, ``httpx.Client(verify=...)``).
    ``create_app_kwargs`` go to :func:`~mlsec_lessons.deployment.app.create_app`.
    """
    import uvicorn

    from .app import create_app

    if (cert is None) != (key is None):
        raise InvalidParameterError("give both cert and key, or neither")
    if tls and cert is None:
        from ..cache import cache_dir
        from .tls import self_signed_cert

        folder = cache_dir() / "deployment" / "tls"
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_cert(folder / "cert.pem", folder / "key.pem", hostnames=_hostnames(host))
        print(f"self-signed certificate: {cert}", flush=True)
    app = create_app(**create_app_kwargs)
    print(f"serving model(s) {', '.join(app.state.models)} over {'HTTPS' if cert else 'HTTP'}", flush=True)
    uvicorn.run(app, host=host, port=port, ssl_certfile=cert, ssl_keyfile=key, log_level="info",
                **uvicorn_options(app))


def _hostnames(host):
    names = ["localhost", "127.0.0.1"]
    return names if host in ("127.0.0.1", "localhost", "0.0.0.0") else [host] + names
