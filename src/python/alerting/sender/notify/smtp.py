"""An SMTP client that pipelines (RFC 2920). With a server that offers PIPELINING, an email's
envelope (MAIL, every RCPT and DATA) goes in one write and its replies are read together:
two round trips per email instead of three plus one per recipient, and as many fewer
wake-ups and system calls on both sides. aiosmtplib, the maintained asyncio client, sends
one command per round trip (replies that arrive together are lost to it), and its round
trips were most of the sender's CPU; this is why the sender has its own client. Without
PIPELINING it sends one command at a time. It does what the sender needs and no more:
EHLO (HELO as a fallback), STARTTLS with the system's trust store, AUTH PLAIN or LOGIN, and
one transaction at a time."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple, cast

# A reply line longer than this (RFC 5321 allows 512 octets) is not an SMTP server's.
MAX_REPLY_LINE = 8192
MAX_REPLY_LINES = 100
LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
LEADING_PERIOD = re.compile(rb"^\.", re.MULTILINE)
# What may not appear in a command's argument: it would end the command and begin another.
COMMAND_BREAK = re.compile(r"[\r\n\x00]")


class Reply(NamedTuple):
    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400


class SmtpError(OSError):
    """The server or the connection failed the attempt: an OSError, as smtplib's errors are,
    so that a worker takes it for an outage of the mail server."""


class UnexpectedReply(SmtpError):
    """A reply that ends the attempt: to the greeting, EHLO, STARTTLS, AUTH, MAIL or DATA."""

    def __init__(self, step: str, reply: Reply) -> None:
        super().__init__(f"{step}: {reply}")
        self.step = step
        self.reply = reply


class SenderRefused(UnexpectedReply):
    pass


class MessageRefused(UnexpectedReply):
    """DATA or the message itself refused: for good with a 5xx code."""


class RecipientsRefused(SmtpError):
    """Every recipient refused: their replies, by address."""

    def __init__(self, refused: dict[str, Reply]) -> None:
        super().__init__("every recipient refused: " + "; ".join(f"{rcpt}: {reply}" for rcpt, reply in refused.items()))
        self.refused = refused


class Disconnected(SmtpError, ConnectionError):
    pass


class ReplyTimeout(SmtpError, TimeoutError):
    pass


@cache
def local_hostname() -> str:
    return socket.getfqdn()


def message_data(message: bytes) -> bytes:
    """The message as DATA carries it: CRLF line endings, a leading period doubled, and the
    ending line."""
    data = LEADING_PERIOD.sub(b"..", LINE_ENDINGS.sub(b"\r\n", message))
    return data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")


def command(*parts: str) -> bytes:
    text = " ".join(parts)
    if COMMAND_BREAK.search(text):
        raise ValueError(f"an SMTP command argument holds a line break or NUL: {text!r}")
    return text.encode("utf-8") + b"\r\n"


class ReplyReader(asyncio.Protocol):
    """The replies of one connection, parsed as they arrive, read in order."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.lines: list[tuple[int, str]] = []
        self.replies: deque[Reply] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.wanted = 0
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport (uvloop's are not).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        start = 0
        while (end := self.buffer.find(b"\n", start)) >= 0:
            line = bytes(self.buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if not self.take(line):
                return
        del self.buffer[:start]
        if len(self.buffer) > MAX_REPLY_LINE:
            self.fail(Disconnected(f"a reply line longer than {MAX_REPLY_LINE} bytes"))
            return
        self.wake()

    def take(self, line: bytes) -> bool:
        """One reply line; False when the server is not speaking SMTP (the connection is
        closed)."""
        if len(line) > MAX_REPLY_LINE or len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
            self.fail(Disconnected(f"not an SMTP reply: {line[:80]!r}"))
            return False
        # A NUL could not be recorded (Postgres text holds none): replaced, as bytes that are not UTF-8 are.
        self.lines.append((int(line[:3]), line[4:].decode("utf-8", "replace").replace("\x00", "\ufffd")))
        if line[3:4] == b"-":
            if len(self.lines) > MAX_REPLY_LINES:
                self.fail(Disconnected(f"a reply of more than {MAX_REPLY_LINES} lines"))
                return False
            return True
        code = self.lines[-1][0]
        self.replies.append(Reply(code, "\n".join(text for _, text in self.lines)))
        self.lines = []
        return True

    def fail(self, error: BaseException) -> None:
        self.lost = error
        if self.transport is not None:
            self.transport.abort()
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done() and (len(self.replies) >= self.wanted or self.lost):
            self.waiter.set_result(None)

    def eof_received(self) -> bool:
        self.lost = self.lost or Disconnected("the server closed the connection")
        self.wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or Disconnected(f"the connection was lost: {exc!r}" if exc else "the connection was lost")
        self.transport = None
        self.wake()

    async def read(self, count: int, timeout: float) -> list[Reply]:
        """The next `count` replies."""
        if len(self.replies) < count and self.lost is None:
            self.wanted = count
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self.waiter
            except TimeoutError:
                raise ReplyTimeout(f"no reply within {timeout} s") from None
            finally:
                self.waiter = None
        if len(self.replies) < count:
            assert self.lost is not None
            raise self.lost
        return [self.replies.popleft() for _ in range(count)]


class SmtpConnection:
    """One open connection, greeted, with TLS and logged in as asked."""

    def __init__(self, reader: ReplyReader, transport: asyncio.Transport, timeout: float) -> None:
        self.reader = reader
        self.transport = transport
        self.timeout = timeout
        self.extensions: dict[str, str] = {}

    @classmethod
    async def open(cls, host: str, port: int, *, timeout: float, start_tls: bool = False, username: str = "",
                   password: str = "") -> SmtpConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, reader = await loop.create_connection(ReplyReader, host, port)
        except TimeoutError:
            raise ReplyTimeout(f"no connection to {host}:{port} within {timeout} s") from None
        connection = cls(reader, transport, timeout)
        try:
            await connection.expect("the greeting", 220)
            await connection.hello()
            if start_tls:
                await connection.start_tls(host)
            if username:
                await connection.log_in(username, password)
        except BaseException:
            connection.close()
            raise
        return connection

    @property
    def is_open(self) -> bool:
        return self.reader.lost is None and not self.transport.is_closing()

    def supports(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    async def exchange(self, commands: Sequence[bytes]) -> list[Reply]:
        """Every command's reply, the commands in one write."""
        if not self.is_open:
            raise self.reader.lost or Disconnected("the connection is closed")
        self.transport.write(b"".join(commands))
        return await self.reader.read(len(commands), self.timeout)

    async def expect(self, step: str, code: int, line: bytes | None = None) -> None:
        reply, = await (self.exchange([line]) if line else self.reader.read(1, self.timeout))
        if reply.code != code:
            raise UnexpectedReply(step, reply)

    async def hello(self) -> None:
        """EHLO, and the extensions it lists; HELO, and none, from a server without EHLO."""
        reply, = await self.exchange([command("EHLO", local_hostname())])
        if reply.code != 250:
            await self.expect("HELO", 250, command("HELO", local_hostname()))
        lines = reply.message.split("\n")[1:] if reply.code == 250 else []
        self.extensions = {name.upper(): parameters for name, _, parameters in (line.partition(" ") for line in lines)}

    async def start_tls(self, host: str) -> None:
        if not self.supports("STARTTLS"):
            raise SmtpError("STARTTLS is required, and the server does not offer it")
        await self.expect("STARTTLS", 220, command("STARTTLS"))
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                transport = await loop.start_tls(self.transport, self.reader, ssl.create_default_context(),
                                                 server_hostname=host)
        except TimeoutError:
            raise ReplyTimeout(f"no TLS handshake within {self.timeout} s") from None
        self.transport = self.reader.transport = cast(asyncio.Transport, transport)
        await self.hello()

    async def log_in(self, username: str, password: str) -> None:
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            await self.expect("AUTH", 235, command("AUTH", "PLAIN", token))
        elif "LOGIN" in mechanisms:
            await self.expect("AUTH", 334, command("AUTH", "LOGIN"))
            await self.expect("AUTH", 334, command(base64.b64encode(username.encode()).decode()))
            await self.expect("AUTH", 235, command(base64.b64encode(password.encode()).decode()))
        else:
            raise SmtpError(f"the server offers no login this client knows (PLAIN, LOGIN): AUTH {mechanisms}")

    async def send(self, sender: str, recipients: Sequence[str], message: bytes, *, smtputf8: bool = False
                   ) -> tuple[dict[str, Reply], Reply]:
        """One email: the replies of the recipients refused (some recipient took it), and
        the server's reply to the message. Raises when it was not sent: SenderRefused,
        RecipientsRefused (every one), MessageRefused, or a failure of the connection."""
        mail = command(f"MAIL FROM:<{sender}>" + (" SMTPUTF8" if smtputf8 else ""))
        rcpts = [command(f"RCPT TO:<{recipient}>") for recipient in recipients]
        data = command("DATA")
        pipelined = self.supports("PIPELINING")
        if pipelined:
            mail_reply, *rcpt_replies, data_reply = await self.exchange([mail, *rcpts, data])
        else:
            mail_reply, = await self.exchange([mail])
            rcpt_replies = ([reply for rcpt in rcpts for reply in await self.exchange([rcpt])]
                            if mail_reply.positive else [])
        # No RCPT replies when the sender was refused unpipelined: then it raises below.
        refused = {recipient: reply for recipient, reply in zip(recipients, rcpt_replies, strict=False)
                   if not reply.positive}
        if not mail_reply.positive or len(refused) == len(rcpts):
            if pipelined and data_reply.code == 354:
                # A server may start a message though nothing can be sent: it ends empty.
                await self.exchange([b".\r\n"])
            await self.reset()
            if not mail_reply.positive:
                raise SenderRefused("MAIL", mail_reply)
            raise RecipientsRefused(refused)
        if not pipelined:
            data_reply, = await self.exchange([data])
        if data_reply.code != 354:
            await self.reset()
            raise MessageRefused("DATA", data_reply)
        final, = await self.exchange([message_data(message)])
        if final.code != 250:
            raise MessageRefused("the message", final)
        return refused, final

    async def reset(self) -> None:
        """After a refused transaction, so the connection can go on; a server that does not
        agree leaves it closed."""
        try:
            reply, = await self.exchange([command("RSET")])
        except (SmtpError, OSError):
            reply = None
        if reply is None or reply.code != 250:
            self.close()

    async def quit(self) -> None:
        try:
            await self.exchange([command("QUIT")])
        finally:
            self.close()

    def close(self) -> None:
        self.transport.abort()
