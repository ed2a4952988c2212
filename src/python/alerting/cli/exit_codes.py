"""alertctl's exit codes: the one place that maps a gRPC status to how the command ends (pure).

Scripts branch on the exit code; people read the error line on stderr, which names the
gRPC code and the server's details (`Error: NOT_FOUND: rule_id: no rule …`).
"""

from __future__ import annotations

import grpc

OK = 0
OTHER = 1  # any other failure: click's own errors too
USAGE = 2  # click's usage errors: a missing or invalid argument or option

# (exit code, when): the table that `alertctl --help` and docs/operations.md show.
EXIT_CODE_TABLE: tuple[tuple[int, str], ...] = (
    (OK, "success"),
    (OTHER, "any other failure (UNKNOWN, INTERNAL, UNIMPLEMENTED, CANCELLED, ...)"),
    (USAGE, "usage error: a bad or missing argument or option; nothing was sent"),
    (3, "INVALID_ARGUMENT: a value the server refused; the details name the field"),
    (4, "NOT_FOUND: no such id or dead-letter offset"),
    (5, "FAILED_PRECONDITION, ALREADY_EXISTS: wrong state, e.g. a stale --version"),
    (6, "UNAUTHENTICATED, PERMISSION_DENIED: no valid API key, or one whose role may not do this"),
    (7, "RESOURCE_EXHAUSTED: a quota or the rate limit, or a request or answer too large"),
    (8, "UNAVAILABLE, DEADLINE_EXCEEDED: unreachable, or no answer within --timeout"),
)

EXIT_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 3,
    grpc.StatusCode.NOT_FOUND: 4,
    grpc.StatusCode.FAILED_PRECONDITION: 5,
    grpc.StatusCode.ALREADY_EXISTS: 5,
    grpc.StatusCode.UNAUTHENTICATED: 6,
    grpc.StatusCode.PERMISSION_DENIED: 6,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 7,
    grpc.StatusCode.UNAVAILABLE: 8,
    grpc.StatusCode.DEADLINE_EXCEEDED: 8,
}


def exit_code(code: grpc.StatusCode) -> int:
    """How alertctl exits after an RPC that ended with `code` (OK for OK)."""
    return OK if code == grpc.StatusCode.OK else EXIT_CODES.get(code, OTHER)


def help_text() -> str:
    """The exit code table for `--help`, kept as written (click's \\b)."""
    return "Exit codes:\n\n\b\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODE_TABLE)


def error_line(code: grpc.StatusCode, details: str | None) -> str:
    """What a failed RPC prints on stderr: its gRPC code and the server's details."""
    return f"Error: {code.name}: {details or '(no details)'}"
