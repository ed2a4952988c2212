"""Rules and source grants as the `rules` and `source_grants` tables hold them: the one
column list and the one row → message conversion of each, which the rule-service's answers
and the snapshot rebuild both use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerting.v1 import rule_pb2

RULE_COLUMNS = (
    "rule_id, client_id, severity, source, name, emails, receiver_ids, enabled, version, created_at, updated_at,"
    " updated_by"
)


def rule_from_row(row: Mapping[str, Any]) -> rule_pb2.Rule:
    """A row of RULE_COLUMNS as the Rule message that the API returns and the snapshot keeps."""
    rule = rule_pb2.Rule(
        rule_id=str(row["rule_id"]),
        client_id=str(row["client_id"]),
        severity=row["severity"],
        source=row["source"],
        name=row["name"],
        emails=list(row["emails"]),
        receiver_ids=sorted(str(receiver_id) for receiver_id in row["receiver_ids"]),
        enabled=row["enabled"],
        version=row["version"],
        updated_by=row["updated_by"],
    )
    rule.created_at.FromDatetime(row["created_at"])
    rule.updated_at.FromDatetime(row["updated_at"])
    return rule


GRANT_COLUMNS = "client_id, source, prefix, created_at, created_by"


def grant_from_row(row: Mapping[str, Any]) -> rule_pb2.SourceGrant:
    """A row of GRANT_COLUMNS as the SourceGrant message that the API returns and the snapshot keeps."""
    grant = rule_pb2.SourceGrant(client_id=str(row["client_id"]), source=row["source"], prefix=row["prefix"],
                                 created_by=row["created_by"])
    grant.created_at.FromDatetime(row["created_at"])
    return grant
