"""Open SMTP connections kept between batches: connecting, EHLO and QUIT per batch cost
the sender and the server more than the emails themselves."""

from __future__ import annotations

import aiosmtplib


class SmtpConnections:
    def __init__(self, *, host: str, port: int, timeout: float, start_tls: bool, username: str, password: str) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.start_tls = start_tls
        self.username = username
        self.password = password
        self.idle: list[aiosmtplib.SMTP] = []

    async def acquire(self) -> aiosmtplib.SMTP:
        """An idle connection that is still open, or a new one (which may raise)."""
        while self.idle:
            smtp = self.idle.pop()
            if smtp.is_connected:
                return smtp
        smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout, start_tls=self.start_tls)
        await smtp.connect()
        if self.username:
            await smtp.login(self.username, self.password)
        return smtp

    def release(self, smtp: aiosmtplib.SMTP) -> None:
        if smtp.is_connected:
            self.idle.append(smtp)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
