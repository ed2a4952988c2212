"""Every settings class reads ALERTING_* variables, and each secret from a file too."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from alerting.common.settings import RuleServiceClientSettings, secret_value


def test_a_secret_setting_reads_from_its_file_and_never_shows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALERTING_API_KEY", raising=False)
    key_file = tmp_path / "key"
    key_file.write_text("ak_public.secretpart\n")
    monkeypatch.setenv("ALERTING_API_KEY_FILE", str(key_file))
    settings = RuleServiceClientSettings()
    assert secret_value(settings.api_key) == "ak_public.secretpart"
    assert "secretpart" not in repr(settings) and "secretpart" not in str(settings.model_dump())
    monkeypatch.setenv("ALERTING_API_KEY", "ak_direct.value")
    assert secret_value(RuleServiceClientSettings().api_key) == "ak_direct.value"


def test_an_unreadable_secret_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALERTING_API_KEY", raising=False)
    monkeypatch.setenv("ALERTING_API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="ALERTING_API_KEY_FILE: cannot read"):
        RuleServiceClientSettings()
