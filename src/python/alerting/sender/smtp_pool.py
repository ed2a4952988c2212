"""Open SMTP connections kept between batches: connecting, EHLO and QUIT per batch cost
the sender and the server more than the emails themselves."""

from __future__ import annotations

from alerting.sender.notify.smtp import SmtpConnection, SmtpError


class SmtpConnections:
    def __init__(self, *, host: str, port: int, timeout: float, start_tls: bool, username: str, password: str) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.start_tls = start_tls
        self.username = username
        self.password = password
        self.idle: list[SmtpConnection] = []

    async def acquire(self) -> SmtpConnection:
        """An idle connection that is still open, or a new one (which may raise)."""
        while self.idle:
            smtp = self.idle.pop()
            if smtp.is_open:
                return smtp
        return await SmtpConnection.open(self.host, self.port, timeout=self.timeout, start_tls=self.start_tls,
                                         username=self.username, password=self.password)

    def release(self, smtp: SmtpConnection) -> None:
        if smtp.is_open:
            self.idle.append(smtp)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except (SmtpError, OSError):
                smtp.close()
