"""The pipelining SMTP client against real servers: the platform's SMTP sink (aiosmtpd),
with and without PIPELINING, with STARTTLS and AUTH; and a server that answers nothing
until the whole envelope has arrived, which only a pipelining client gets past."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.kafka.outages import is_outage
from alerting.sender.notify.smtp import (
    Disconnected,
    MessageRefused,
    RecipientsRefused,
    Reply,
    ReplyReader,
    SenderRefused,
    SmtpConnection,
    SmtpError,
    UnexpectedReply,
    command,
    message_data,
)
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import MailboxHandler, start_sink
from alerting.testsupport.tls import certificates

MESSAGE = b"From: a@x.io\nTo: b@x.io\nSubject: hi\n\n.a line with a leading period\r\nlast line"


@asynccontextmanager
async def sink(folder: Path, **options: object) -> AsyncIterator[tuple[int, MailboxHandler]]:
    server, handler = await start_sink("127.0.0.1", 0, folder, **options)  # type: ignore[arg-type]
    try:
        yield server.sockets[0].getsockname()[1], handler
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("pipelining", [True, False])
async def test_an_email_reaches_the_server_with_its_refusals_named(tmp_path: Path, pipelining: bool) -> None:
    async with sink(tmp_path, rcpt_replies={"gone@x.io": "550 5.1.1 no such user"}, pipelining=pipelining) as (
            port, handler):
        smtp = await SmtpConnection.open("127.0.0.1", port, timeout=5)
        assert smtp.supports("PIPELINING") is pipelining and smtp.supports("smtputf8")
        refused, reply = await smtp.send("alerts@x.io", ["b@x.io", "gone@x.io", "c@x.io"], MESSAGE)
        assert refused == {"gone@x.io": Reply(550, "5.1.1 no such user")}
        assert reply.code == 250
        # The connection goes on: a second email on it.
        await smtp.send("alerts@x.io", ["d@x.io"], MESSAGE)
        await smtp.quit()
    kept = mailbox.read_all(tmp_path)
    assert [mail["Delivered-To"] for mail in kept] == ["b@x.io, c@x.io", "d@x.io"]
    assert kept[0].get_payload() == ".a line with a leading period\r\nlast line\r\n"
    assert handler.received == 2


@pytest.mark.parametrize("pipelining", [True, False])
async def test_refusals_of_everyone_the_sender_or_the_message_raise_and_leave_the_connection_usable(
        tmp_path: Path, pipelining: bool) -> None:
    async with sink(tmp_path, rcpt_replies={"a@x.io": "550 no", "b@x.io": "451 later"},
                    data_replies={"spam@x.io": "554 5.7.1 content rejected"}, pipelining=pipelining) as (port, _):
        smtp = await SmtpConnection.open("127.0.0.1", port, timeout=5)
        with pytest.raises(RecipientsRefused) as everyone:
            await smtp.send("alerts@x.io", ["a@x.io", "b@x.io"], MESSAGE)
        assert everyone.value.refused == {"a@x.io": Reply(550, "no"), "b@x.io": Reply(451, "later")}
        with pytest.raises(MessageRefused) as message:
            await smtp.send("alerts@x.io", ["spam@x.io"], MESSAGE)
        assert message.value.reply == Reply(554, "5.7.1 content rejected")
        with pytest.raises(SenderRefused) as sender:
            await smtp.send("a@b@x.io", ["c@x.io"], MESSAGE)
        assert sender.value.reply.code == 553
        await smtp.send("alerts@x.io", ["c@x.io"], MESSAGE)
        await smtp.quit()
    assert [mail["Delivered-To"] for mail in mailbox.read_all(tmp_path)] == ["c@x.io"]


async def test_the_envelope_goes_in_one_write_to_a_server_that_offers_pipelining() -> None:
    """A server that answers no command of the envelope before DATA has arrived: a client
    that waited for each reply would wait forever."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        await reader.readline()
        writer.write(b"250-here\r\n250-PIPELINING\r\n250 HELP\r\n")
        envelope = b""
        while not envelope.endswith(b"DATA\r\n"):
            envelope += await reader.read(4096)
        received.append(envelope)
        writer.write(b"250 sender ok\r\n250 rcpt ok\r\n550 no such user\r\n354 go on\r\n")
        received.append(await reader.readuntil(b"\r\n.\r\n"))
        writer.write(b"250 kept\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        smtp = await SmtpConnection.open("127.0.0.1", server.sockets[0].getsockname()[1], timeout=5)
        refused, reply = await smtp.send("alerts@x.io", ["b@x.io", "gone@x.io"], b"Subject: hi\n\nbody\n")
    assert received == [b"MAIL FROM:<alerts@x.io>\r\nRCPT TO:<b@x.io>\r\nRCPT TO:<gone@x.io>\r\nDATA\r\n",
                        b"Subject: hi\r\n\r\nbody\r\n.\r\n"]
    assert refused == {"gone@x.io": Reply(550, "no such user")} and reply == Reply(250, "kept")


async def tls_server(handler: MailboxHandler, **options: object) -> asyncio.Server:
    """An SMTP server that offers STARTTLS with the test CA's certificate."""
    tls = certificates()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    return await asyncio.get_running_loop().create_server(lambda: SMTP(
        handler, hostname="alerting.local", tls_context=context, **options), "127.0.0.1", 0)  # type: ignore[arg-type]


def test_the_client_works_on_the_event_loop_the_sender_runs_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", certificates().ca)  # the system's trust store, here the test CA

    async def every_way() -> None:
        for pipelining in (True, False):
            async with sink(tmp_path, rcpt_replies={"gone@x.io": "550 no"}, pipelining=pipelining) as (port, _):
                smtp = await SmtpConnection.open("127.0.0.1", port, timeout=5)
                refused, _ = await smtp.send("alerts@x.io", ["b@x.io", "gone@x.io"], MESSAGE)
                assert refused == {"gone@x.io": Reply(550, "no")}
                await smtp.quit()
        async with await tls_server(MailboxHandler(tmp_path), require_starttls=True) as server:
            smtp = await SmtpConnection.open("127.0.0.1", server.sockets[0].getsockname()[1], timeout=5,
                                             start_tls=True)
            await smtp.send("alerts@x.io", ["b@x.io"], MESSAGE)
            await smtp.quit()

    uvloop.run(every_way())
    assert len(mailbox.read_all(tmp_path)) == 3


class Logins:
    def __call__(self, server: SMTP, session: object, envelope: object, mechanism: str, data: object) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"s3cret")
        return AuthResult(success=ok, handled=False)  # a failure answered 535


@pytest.mark.parametrize("mechanisms", [["PLAIN", "LOGIN"], ["LOGIN"]])
async def test_starttls_with_a_trusted_certificate_then_a_login(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mechanisms: list[str]) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", certificates().ca)  # the system's trust store, here the test CA
    handler = MailboxHandler(tmp_path)
    server = await tls_server(handler, require_starttls=True, authenticator=Logins(), auth_required=True,
                              auth_exclude_mechanism=[name for name in ("PLAIN", "LOGIN") if name not in mechanisms])
    port = server.sockets[0].getsockname()[1]
    async with server:
        smtp = await SmtpConnection.open("127.0.0.1", port, timeout=5, start_tls=True, username="alerts",
                                         password="s3cret")
        await smtp.send("alerts@x.io", ["b@x.io"], MESSAGE)
        await smtp.quit()
        with pytest.raises(UnexpectedReply) as refused:
            await SmtpConnection.open("127.0.0.1", port, timeout=5, start_tls=True, username="alerts",
                                      password="wrong")
        assert refused.value.step == "AUTH" and refused.value.reply.code == 535
    assert handler.received == 1


async def test_starttls_refuses_an_untrusted_certificate_and_a_server_without_it(tmp_path: Path) -> None:
    async with await tls_server(MailboxHandler(tmp_path)) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await SmtpConnection.open("127.0.0.1", server.sockets[0].getsockname()[1], timeout=5, start_tls=True)
    async with sink(tmp_path) as (port, _):
        with pytest.raises(SmtpError, match="STARTTLS is required"):
            await SmtpConnection.open("127.0.0.1", port, timeout=5, start_tls=True)


async def test_a_closed_connection_is_an_outage_and_not_open(tmp_path: Path) -> None:
    async with sink(tmp_path) as (port, _):
        smtp = await SmtpConnection.open("127.0.0.1", port, timeout=5)
        await smtp.exchange([command("QUIT")])
        await asyncio.sleep(0.1)
        assert not smtp.is_open
        with pytest.raises(Disconnected) as closed:
            await smtp.send("alerts@x.io", ["b@x.io"], MESSAGE)
    assert is_outage(closed.value)


def test_a_command_argument_cannot_begin_another_command() -> None:
    for bad in ("a@x.io>\r\nRCPT TO:<b@x.io", "a@x.io\n", "a\x00@x.io"):
        with pytest.raises(ValueError, match="line break or NUL"):
            command(f"RCPT TO:<{bad}>")


def unstuffed(data: bytes) -> bytes:
    """What a server keeps of DATA: the ending line gone, leading periods halved."""
    assert data.endswith(b"\r\n.\r\n")
    lines = data[:-5].split(b"\r\n")
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


@given(st.binary(max_size=300) | st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"x", b".."])).map(b"".join))
def test_any_message_reaches_the_server_as_it_was_written_with_crlf_line_endings(message: bytes) -> None:
    data = message_data(message)
    assert b"\r\n.\r\n" not in data[:-3]  # nothing inside ends the message early
    normalized = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    expected = normalized if normalized.endswith(b"\r\n") else normalized + b"\r\n"
    assert unstuffed(data) == expected


REPLIES = st.lists(st.tuples(st.integers(200, 599), st.lists(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20), min_size=1, max_size=4)),
    min_size=1, max_size=6)


@given(REPLIES, st.data())
def test_replies_are_read_whole_and_in_order_however_the_bytes_arrive(
        replies: list[tuple[int, list[str]]], data: st.DataObject) -> None:
    stream = b"".join(b"".join(f"{code}{'-' if n < len(lines) - 1 else ' '}{line}\r\n".encode()
                               for n, line in enumerate(lines)) for code, lines in replies)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(stream) - 1, 1)), max_size=8)))
    reader = ReplyReader()
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.data_received(stream[start:end])
    assert list(reader.replies) == [Reply(code, "\n".join(lines)) for code, lines in replies]
    assert reader.lost is None


def test_a_reply_holds_no_nul_and_no_bytes_that_are_not_utf8() -> None:
    reader = ReplyReader()
    reader.data_received(b"550 no\x00such \xff user\r\n")
    assert list(reader.replies) == [Reply(550, "no\ufffdsuch \ufffd user")]


def test_a_server_that_does_not_speak_smtp_is_a_lost_connection() -> None:
    reader = ReplyReader()
    reader.data_received(b"HTTP/1.1 400 Bad Request\r\n")
    assert isinstance(reader.lost, Disconnected) and not reader.replies
