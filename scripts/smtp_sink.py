#!/usr/bin/python3
"""SMTP capture server for Outgrow's integration tests (run it through scripts/smtp-sink).

    /usr/bin/python3 scripts/smtp_sink.py --host 127.0.0.1 --port PORT \
        --maildir DIR/maildir --pidfile DIR/smtp.pid [--delay SECONDS] \
        [--tls starttls|implicit --cert CERT.pem --key KEY.pem] [--auth USER:PASSWORD]

A real RFC 5321 server (aiosmtpd, Debian package python3-aiosmtpd). Every message whose DATA
is complete is stored atomically in the Maildir (written to tmp/, then linked into new/, by
mailbox.Maildir.add), as the client's bytes with X-Peer, X-MailFrom and X-RcptTo headers put in
front (what aiosmtpd.handlers.Mailbox adds), and only then answered with 250.

--delay SECONDS: wait that long inside the DATA handler before storing and answering. A client
that goes away during the wait (EOF or reset) cancels the handler (aiosmtpd does so on EOF and
on connection loss), so its message is never stored: tests kill a sender mid-delivery.

--tls starttls: offer STARTTLS with CERT/KEY and refuse mail before it (530); --tls implicit:
TLS from the first byte (SMTPS). The TLS tests start it directly, with their own CA.
--auth USER:PASSWORD: refuse mail until the client has authenticated (AUTH PLAIN or LOGIN,
over TLS only) as USER with PASSWORD; a wrong pair gets 535.

SIGTERM / SIGINT: stop accepting, cancel the sessions (an unfinished delayed message is dropped),
remove the pid file, exit 0.
"""

import argparse
import asyncio
import logging
import mailbox
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger("smtp-sink")


class MaildirSink:
    def __init__(self, maildir: str, delay: float):
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.maildir = mailbox.Maildir(maildir, factory=None, create=True)
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        peer = session.peer
        if self.delay > 0:
            log.info("%r DATA complete, waiting %.3f s before storing", peer, self.delay)
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                log.info("%r client went away during the delay: message dropped", peer)
                raise
        # Belt and braces: aiosmtpd cancels this coroutine when the client disconnects, but
        # never store for a connection that is already gone.
        if server.transport is None or server.transport.is_closing():
            log.info("%r connection closed before storing: message dropped", peer)
            return "421 4.4.2 connection gone"
        content = envelope.original_content or b""
        head = (
            f"X-Peer: {peer[0] if isinstance(peer, tuple) else peer}\r\n"
            f"X-MailFrom: {envelope.mail_from}\r\n"
            f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode("utf-8", "surrogateescape")
        key = self.maildir.add(head + content)  # tmp/ -> new/, atomic
        log.info(
            "%r stored %s: from=%s to=%s bytes=%d",
            peer, key, envelope.mail_from, ",".join(envelope.rcpt_tos), len(content),
        )
        return "250 OK: message stored"


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    handler = MaildirSink(args.maildir, args.delay)
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    starttls = context if args.tls == "starttls" else None
    expected = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        expected = (user.encode(), password.encode())

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == expected
        log.info("%r AUTH %s as %r: %s", session.peer, mechanism,
                 getattr(auth_data, "login", b"?"), "accepted" if ok else "refused")
        # handled=False: aiosmtpd answers a refusal with 535 itself (its default, handled=True,
        # answers nothing at all).
        return AuthResult(success=ok, handled=False)

    def factory():
        return SMTP(
            handler,
            hostname="smtp-sink.localhost",  # avoids socket.getfqdn() (DNS) per connection
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
            timeout=300,
            tls_context=starttls,
            require_starttls=starttls is not None,
            authenticator=authenticator if expected else None,
            auth_required=expected is not None,
            # Never AUTH in the clear. aiosmtpd counts only STARTTLS as TLS: under SMTPS
            # (the whole connection is TLS) it would never offer AUTH, so it is told so.
            auth_require_tls=args.tls != "implicit",
            loop=loop,
        )

    implicit = context if args.tls == "implicit" else None
    server = await loop.create_server(factory, host=args.host, port=args.port, ssl=implicit)
    tmp = f"{args.pidfile}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, args.pidfile)
    log.info(
        "listening on %s:%d, delay %.3f s, maildir %s, pid %d",
        args.host, args.port, args.delay, args.maildir, os.getpid(),
    )

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received, shutting down")
    server.close()
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current:
            task.cancel()
    try:
        await asyncio.wait_for(server.wait_closed(), 1)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        pass
    try:
        with open(args.pidfile) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(args.pidfile)
    except OSError:
        pass
    log.info("stopped")


def main() -> int:
    p = argparse.ArgumentParser(description="SMTP server that writes every message to a Maildir")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--tls", choices=["starttls", "implicit"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    args = p.parse_args()
    if args.delay < 0:
        p.error("--delay must be >= 0")
    if args.tls and not (args.cert and args.key):
        p.error("--tls needs --cert and --key")
    if args.auth and (":" not in args.auth or not args.tls):
        p.error("--auth needs USER:PASSWORD and --tls")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
