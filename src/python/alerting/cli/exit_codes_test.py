"""How alertctl exits after each gRPC status."""

from __future__ import annotations

import grpc

from alerting.cli import exit_codes


def test_every_grpc_status_has_one_exit_code() -> None:
    assert {code.name: exit_codes.exit_code(code) for code in grpc.StatusCode} == {
        "OK": 0, "CANCELLED": 1, "UNKNOWN": 1, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 8, "NOT_FOUND": 4,
        "ALREADY_EXISTS": 5, "PERMISSION_DENIED": 6, "RESOURCE_EXHAUSTED": 7, "FAILED_PRECONDITION": 5,
        "ABORTED": 1, "OUT_OF_RANGE": 1, "UNIMPLEMENTED": 1, "INTERNAL": 1, "UNAVAILABLE": 8, "DATA_LOSS": 1,
        "UNAUTHENTICATED": 6,
    }
