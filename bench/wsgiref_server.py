"""A threaded WSGI server from the standard library: ``python -m bench.wsgiref_server``.

The load test's fallback where gunicorn (in the ``bench`` extra) is not
installed. It speaks HTTP/1.0, one connection per request, so its numbers are
not comparable with gunicorn's; the results say which server ran.
"""

from __future__ import annotations

import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.wsgi import get_wsgi_application


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    server = make_server(
        host,
        int(port),
        get_wsgi_application(),
        server_class=ThreadingWSGIServer,
        handler_class=QuietHandler,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
