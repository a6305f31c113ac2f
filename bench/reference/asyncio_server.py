#!/usr/bin/env python3
"""A reference chat server for charla-bench: Charla protocol v1 (docs/protocol.md) in asyncio.

It stands for "the tutorial's server redone in asyncio": one task per client reading lines with a
StreamReader, and every message written to each recipient's StreamWriter as it comes, one
write() per recipient and line, with no batching of its own. It speaks the whole protocol
(registration, public messages, /users, /msg, /me, /nick, /ping, /quit, /help, JOIN and LEAVE,
the documented errors), without a password, flood control or a connection limit: the scenarios
of scripts/bench.sh run charla-server with flood control off and far under its limits anyway.
A client that stops reading is disconnected once more than --max-queue bytes wait for it
(LEAVE <nick> too slow), as in charla-server.

TLS comes from the ssl module with Python's defaults for a server (TLS 1.2 and 1.3; with an
OpenSSL client, TLS 1.3 with TLS_AES_256_GCM_SHA384 and X25519, as charla-server).

    python3 bench/reference/asyncio_server.py --bind 127.0.0.1:12345 \
        --cert certs/server-cert.pem --key certs/server-key.key

Logs go to stderr: "listening on HOST:PORT" once ready, then one line per join and leave.
SIGINT or SIGTERM: every client gets "NOTICE server shutting down" and the server exits.
"""

import argparse
import asyncio
import logging
import signal
import ssl
import sys
import time

MAX_NICK_CHARS = 32
MAX_SERVER_LINE = 4096  # bytes, terminator included, for lines other than MSG/ACTION/PRIVMSG

HELP = [
    "Commands:",
    "/users (or !usuarios)     list who is in the chat",
    "/msg <nick> <text>        send a private message",
    '/me <text>                send an action ("* nick waves")',
    "/nick <new>               change your nickname",
    "/ping [token]             the server answers PONG [token]",
    "/quit [reason]            leave the chat",
    "/help                     this list",
    "Any other line is a public message; start it with // to send a line that begins with /.",
]

USAGE = {"msg": "/msg <nick> <text>", "me": "/me <text>", "nick": "/nick <new>"}

TOO_LONG = object()  # read_line's answer for a line over --max-line (dropped)


def log(msg):
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), msg, file=sys.stderr, flush=True)


def nick_error(nick):
    """Why nick is not a valid nickname, or None."""
    if not nick:
        return "a nickname needs at least one character"
    for ch in nick:
        if not (ch.isalnum() or ch in "_-."):
            return f"{ch!r} is not allowed: use letters, digits, _ - ."
    if len(nick) > MAX_NICK_CHARS:
        return f"at most {MAX_NICK_CHARS} characters"
    return None


def clean(text):
    """The text without control characters (Unicode Cc) other than tab."""
    if text.isprintable():
        return text
    return "".join(ch for ch in text if ch == "\t" or not _is_control(ch))


def _is_control(ch):
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0


def split_word(s):
    word, _, rest = s.partition(" ")
    return word, rest.lstrip(" ")


class Client:
    __slots__ = ("writer", "nick", "closing")

    def __init__(self, writer):
        self.writer = writer
        self.nick = None
        self.closing = False


class ChatServer:
    def __init__(self, max_line, max_queue, register_timeout):
        self.max_line = max_line
        self.max_queue = max_queue
        self.register_timeout = register_timeout
        self.users = {}  # nick.lower() -> Client, registered clients only
        self.clients = set()  # every connection

    # ------------------------------------------------------------------ output

    def send(self, client, line):
        self.send_bytes(client, (line + "\n").encode())

    def send_bytes(self, client, data):
        transport = client.writer.transport
        # A client whose connection is already gone (its task has yet to see the end of its
        # input) gets nothing: asyncio would only log a warning for each such write.
        if client.closing or transport.is_closing():
            return
        client.writer.write(data)
        if transport.get_write_buffer_size() > self.max_queue:
            self.drop(client, "too slow")

    def broadcast(self, line, exclude=None):
        data = (line + "\n").encode()
        for other in list(self.users.values()):
            if other is not exclude:
                self.send_bytes(other, data)

    def drop(self, client, reason):
        """Closes a client that the server gives up on; its task sees the end of its input."""
        if client.closing:
            return
        client.closing = True
        client.writer.transport.abort()
        self.leave(client, reason)

    def leave(self, client, reason):
        if client.nick is not None and self.users.get(client.nick.lower()) is client:
            del self.users[client.nick.lower()]
            log(f"leave {client.nick} ({reason or 'quit'})")
            self.broadcast(f"LEAVE {client.nick} {reason}".rstrip())
        client.nick = None

    def user_list(self, client):
        names = [c.nick for c in self.users.values()]
        line = f"USERS {len(names)}"
        for name in names:
            if len(line.encode()) + 1 + len(name.encode()) + 1 > MAX_SERVER_LINE:
                self.send(client, line)
                line = "USERS+"
            line += " " + name
        self.send(client, line)

    # ------------------------------------------------------------------ input

    async def read_line(self, reader):
        """The next line without its terminator (bytes), TOO_LONG, or None at the end."""
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as e:
            # Drop the whole line: what is buffered, then up to the next newline.
            consumed = e.consumed
            while True:
                await reader.readexactly(consumed)
                try:
                    await reader.readuntil(b"\n")
                    return TOO_LONG
                except asyncio.IncompleteReadError:
                    return None
                except asyncio.LimitOverrunError as e2:
                    consumed = e2.consumed
        if len(line) > self.max_line:
            return TOO_LONG
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        return line

    async def handle(self, reader, writer):
        client = Client(writer)
        self.clients.add(client)
        reason = "connection closed"
        try:
            deadline = asyncio.get_running_loop().time() + self.register_timeout
            while not client.closing:
                try:
                    if client.nick is None:
                        async with asyncio.timeout_at(deadline):
                            raw = await self.read_line(reader)
                    else:
                        raw = await self.read_line(reader)
                except TimeoutError:
                    self.send(client, "ERROR timeout no nickname within "
                              f"{self.register_timeout:g} s")
                    break
                if raw is None:
                    break
                if raw is TOO_LONG:
                    self.send(client, f"ERROR line-too-long lines are at most {self.max_line} "
                              "bytes; that one was dropped")
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.send(client, "ERROR bad-utf8 that line was not UTF-8; it was dropped")
                    continue
                quit_reason = (self.registration(client, line) if client.nick is None
                               else self.command(client, line))
                if quit_reason is not None:
                    reason = quit_reason
                    break
        except (ConnectionError, ssl.SSLError, OSError):
            reason = "connection lost"
        finally:
            self.clients.discard(client)
            if not client.closing:
                client.closing = True
                self.leave(client, reason)
                writer.close()
                try:
                    await writer.wait_closed()
                except (ConnectionError, ssl.SSLError, OSError):
                    pass

    # ------------------------------------------------------------------ protocol

    def register(self, client, nick):
        why = nick_error(nick)
        if why:
            self.send(client, f"ERROR nick-invalid {why}")
        elif nick.lower() in self.users:
            self.send(client, f"ERROR nick-taken {nick} is already in use, choose another")
        else:
            client.nick = nick
            self.users[nick.lower()] = client
            log(f"join {nick}")
            self.send(client, f"WELCOME {nick}")
            self.user_list(client)
            self.broadcast(f"JOIN {nick}", exclude=client)

    def registration(self, client, line):
        """A line before the nickname. Returns the quit reason when the client leaves."""
        text = line.strip(" ")
        if not text.startswith("/"):
            self.register(client, text)
            return None
        cmd, arg = split_word(text[1:])
        cmd = cmd.lower()
        if cmd == "nick":
            if arg.strip(" "):
                self.register(client, arg.strip(" "))
            else:
                self.send(client, f"ERROR missing-argument usage: {USAGE['nick']}")
        elif cmd in ("ping", "help", "quit"):
            return self.command(client, line)
        else:
            self.send(client, "ERROR nick-invalid choose a nickname first: "
                      "send it alone on a line")
        return None

    def command(self, client, line):
        """A line from a registered client (or /ping, /help, /quit before that).
        Returns the quit reason when the client leaves."""
        if not line.strip(" \t"):
            return None
        if not line.startswith("/") or line.startswith("//"):
            text = clean(line[1:] if line.startswith("//") else line)
            self.broadcast(f"MSG {client.nick} {text}", exclude=client)
            return None
        if split_word(line)[0].lower() == "!usuarios":
            self.user_list(client)
            return None
        cmd, arg = split_word(line[1:])
        cmd = cmd.lower()
        if cmd == "ping":
            self.send(client, f"PONG {clean(arg)}".rstrip(" "))
        elif cmd == "quit":
            return clean(arg).strip()  # "" without a reason: LEAVE <nick>
        elif cmd == "help":
            for help_line in HELP:
                self.send(client, f"NOTICE {help_line}")
        elif cmd == "users":
            self.user_list(client)
        elif cmd == "me":
            if not arg.strip():
                self.send(client, f"ERROR missing-argument usage: {USAGE['me']}")
            else:
                self.broadcast(f"ACTION {client.nick} {clean(arg)}", exclude=client)
        elif cmd == "msg":
            to, text = split_word(arg)
            if not to or not text.strip():
                self.send(client, f"ERROR missing-argument usage: {USAGE['msg']}")
            elif to.lower() not in self.users:
                self.send(client, f"ERROR no-such-user {to}")
            else:
                self.send(self.users[to.lower()], f"PRIVMSG {client.nick} {clean(text)}")
        elif cmd == "nick":
            new = arg.strip(" ")
            why = nick_error(new) if new else None
            if not new:
                self.send(client, f"ERROR missing-argument usage: {USAGE['nick']}")
            elif why:
                self.send(client, f"ERROR nick-invalid {why}")
            elif new == client.nick:
                self.send(client, f"NOTICE your nickname is already {new}")
            elif new.lower() in self.users and self.users[new.lower()] is not client:
                self.send(client, f"ERROR nick-taken {new} is already in use, choose another")
            else:
                old = client.nick
                del self.users[old.lower()]
                client.nick = new
                self.users[new.lower()] = client
                log(f"nick {old} {new}")
                self.broadcast(f"NICK {old} {new}")
        else:
            self.send(client, f"ERROR unknown-command {clean(cmd)}")
        return None

    def shutdown(self):
        for client in list(self.clients):
            if not client.closing:
                self.send(client, "NOTICE server shutting down")
                client.closing = True
                client.writer.close()


def parse_bind(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", type=parse_bind, default=("127.0.0.1", 12345),
                   help="HOST:PORT to listen on [127.0.0.1:12345]")
    p.add_argument("--cert", default="certs/server-cert.pem", help="PEM certificate")
    p.add_argument("--key", default="certs/server-key.key", help="PEM private key (unencrypted)")
    p.add_argument("--max-line", type=int, default=4096,
                   help="longest client line in bytes, terminator included [4096]")
    p.add_argument("--max-queue", type=int, default=1 << 20,
                   help="bytes waiting for one client before it is dropped as too slow [1 MiB]")
    p.add_argument("--register-timeout", type=float, default=30.0,
                   help="seconds to choose a nickname [30]")
    p.add_argument("--handshake-timeout", type=float, default=10.0,
                   help="seconds to finish the TLS handshake [10]")
    args = p.parse_args()
    # asyncio warns about every write to a connection that was reset a moment ago ("socket.send()
    # raised exception.") until the client's task has seen it go: noise that costs CPU in churn.
    logging.getLogger("asyncio").setLevel(logging.ERROR)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)

    chat = ChatServer(args.max_line, args.max_queue, args.register_timeout)
    host, port = args.bind
    server = await asyncio.start_server(
        chat.handle, host, port, ssl=ctx, limit=args.max_line,
        ssl_handshake_timeout=args.handshake_timeout, backlog=4096)
    addr = server.sockets[0].getsockname()
    log(f"listening on {addr[0]}:{addr[1]}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
        server.close()
        chat.shutdown()
        await asyncio.sleep(0.1)  # let the close_notify alerts go out
    log("stopped")


if __name__ == "__main__":
    asyncio.run(main())
