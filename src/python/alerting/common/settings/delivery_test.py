"""The mail server's settings: the SMTP password is a secret, from its file too."""

from pathlib import Path

import pytest

from alerting.common.settings import SmtpSettings, secret_value


def test_the_smtp_password_reads_from_its_file_and_never_shows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALERTING_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("ALERTING_SMTP_PASSWORD_FILE", raising=False)
    assert SmtpSettings().smtp_password is None  # no login unless one is given
    (tmp_path / "smtp").write_text("mail-secret\n")
    monkeypatch.setenv("ALERTING_SMTP_USERNAME", "alerts")
    monkeypatch.setenv("ALERTING_SMTP_PASSWORD_FILE", str(tmp_path / "smtp"))
    settings = SmtpSettings()
    assert (settings.smtp_username, secret_value(settings.smtp_password)) == ("alerts", "mail-secret")
    assert "mail-secret" not in repr(settings) and "mail-secret" not in str(settings.model_dump())
    monkeypatch.setenv("ALERTING_SMTP_PASSWORD", "direct-secret")
    assert secret_value(SmtpSettings().smtp_password) == "direct-secret"
