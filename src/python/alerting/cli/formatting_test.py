"""Cells as alertctl's tables show them."""

from __future__ import annotations

from alerting.cli.formatting import cell
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import dead_letter_service_pb2 as dead_letters_api


def test_dead_letter_cells() -> None:
    listed = dead_letters_api.DeadLetter(key=b"a\nb\xff", source=dead_letters_api.DeadLetterSource(
        topic="p.alerts.new", partition=2, offset=9))
    assert [cell(listed, column) for column in ("key", "source", "timestamp", "replay_of")] == [
        "a\\x0ab\\xff", "p.alerts.new/2/9", "", ""]
    assert cell(dead_letters_api.DeadLetter(), "source") == ""


def test_key_cells_escape_control_characters() -> None:
    key = keys_api.ApiKey(key_id="abcdefghijkl", role=keys_api.ROLE_TENANT, name="ci\nrunner")
    assert [cell(key, column) for column in ("role", "name", "revoked_at")] == ["TENANT", "ci\\x0arunner", ""]
