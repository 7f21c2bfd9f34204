"""A fake helpdesk for Ferry's tests: a real HTTP(S) server that verifies every callback with
the published Standard Webhooks library (PyPI `standardwebhooks`) and records it.

    fake_helpdesk.py --dir DIR --secret whsec_... [--secret ...] [--port N]
                     [--tls-cert PEM --tls-key PEM]

Writes DIR/port once listening. Every verified callback is appended to DIR/received.jsonl
(id, timestamp, path, the parsed body, the raw signature header, which secret verified it);
every refused one to DIR/refused.jsonl with the library's reason, answered 401.
`POST /control` with {"answer": 204|410|503|302|..., "retry_after": secs|null} sets how
verified callbacks are answered from then on (default 204). `POST /verify` checks a request
the test crafts (tampered, re-signed) the same way and answers 204 or 401.
"""

import argparse
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--secret", action="append", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    hooks = [Webhook(s) for s in args.secret]
    state = {"answer": 204, "retry_after": None}

    def append(name, record):
        with LOCK, open(os.path.join(args.dir, name), "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def verify(body, headers):
        errors = []
        for i, hook in enumerate(hooks):
            try:
                return i, hook.verify(body, headers), None
            except WebhookVerificationError as e:
                errors.append(str(e))
            except Exception as e:  # malformed headers are refusals too
                errors.append(f"{type(e).__name__}: {e}")
        return None, None, "; ".join(errors)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, code, extra=None):
            self.send_response(code)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            if self.path == "/control":
                state.update(json.loads(body))
                return self.answer(204)
            headers = {k.lower(): v for k, v in self.headers.items()}
            index, parsed, error = verify(body, headers)
            if index is None:
                append("refused.jsonl", {"path": self.path, "error": error,
                                         "id": headers.get("webhook-id")})
                return self.answer(401)
            if self.path == "/verify":
                return self.answer(204)
            append("received.jsonl", {
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "path": self.path,
                "secret": index,
                "answered": state["answer"],
                "body": parsed,
                "raw": body.decode(),
            })
            extra = {}
            if state.get("retry_after") is not None:
                extra["Retry-After"] = str(state["retry_after"])
            if state["answer"] in (301, 302, 307, 308):
                extra["Location"] = "http://127.0.0.1:9/elsewhere"
            self.answer(state["answer"], extra)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, os.path.join(args.dir, "port"))
    server.serve_forever()


if __name__ == "__main__":
    main()
