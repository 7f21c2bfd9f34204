"""A real SMTP server for Ferry's tests (PyPI `aiosmtpd`): STARTTLS required, AUTH required
after it, every accepted message written to DIR/mail-<n>.eml.

    smtp_server.py --dir DIR --cert PEM --key PEM --user NAME --password PASSWORD

Writes DIR/port once listening; DIR/auth.log records each AUTH attempt's outcome.
"""

import argparse
import os
import socket
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()
    lock = threading.Lock()
    count = [0]

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                count[0] += 1
                n = count[0]
            tmp = os.path.join(args.dir, f"mail-{n}.tmp")
            with open(tmp, "wb") as f:
                f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
                f.write(envelope.original_content or envelope.content)
            os.replace(tmp, os.path.join(args.dir, f"mail-{n}.eml"))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == args.user
              and auth_data.password.decode() == args.password)
        with open(os.path.join(args.dir, "auth.log"), "a") as f:
            f.write(f"{mechanism} {'ok' if ok else 'refused'}\n")
        return AuthResult(success=ok)

    # The controller connects to its own port to check it started: it needs a real one.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, os.path.join(args.dir, "port"))
    threading.Event().wait()


if __name__ == "__main__":
    main()
