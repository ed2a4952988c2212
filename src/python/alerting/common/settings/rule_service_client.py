"""How clients reach the rule-service: alertctl, the demo and the tests."""

from __future__ import annotations

from pydantic import Field, SecretStr

from alerting.common.settings.base import AlertingSettings


class RuleServiceTls(AlertingSettings):
    """Whether the rule-service and its clients speak TLS."""

    rule_service_tls: bool = Field(default=True, description=(
        "Clients connect to the rule-service over TLS; the rule-service serves TLS. false: plaintext on"
        " purpose (behind a proxy that terminates TLS)."))


class RuleServiceClientSettings(RuleServiceTls):
    """A client of the rule-service (common.grpc_client): where it is, the CA, the API key."""

    rule_service_address: str = Field(default="127.0.0.1:50051", description=(
        "Where alertctl (the default of `--address`), the demo and the tests find the rule-service."))
    tls_ca_file: str = Field(default="", description=(
        "The CA (PEM) that clients verify the rule-service's certificate against; empty: the system's CAs."))
    api_key: SecretStr | None = Field(default=None, description=(
        "The API key a client of the rule-service presents (`authorization: Bearer <key>`)."))
