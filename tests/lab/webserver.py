"""The lab's web site: HTTP on 80 and HTTPS on 443 (a self-signed certificate) on one address.

python -m tests.lab.webserver ADDRESS CERT KEY
"""

from __future__ import annotations

import http.server
import ssl
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    address, cert, key = sys.argv[1:4]
    plain = http.server.ThreadingHTTPServer((address, 80), Handler)
    secure = http.server.ThreadingHTTPServer((address, 443), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    secure.serve_forever()


if __name__ == "__main__":
    main()
