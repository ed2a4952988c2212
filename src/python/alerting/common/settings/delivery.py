"""What delivering notifications takes beyond the sender itself: the mail server, the
platform's default delivery policy, and the receivers' rules, which the rule-service
applies too."""

from __future__ import annotations

from pydantic import Field, SecretStr

from alerting.common.settings.base import AlertingSettings


class SmtpSettings(AlertingSettings):
    """The mail server the sender sends to."""

    smtp_host: str = Field(default="127.0.0.1", description="The SMTP server the sender sends to.")
    smtp_port: int = Field(default=2525, description="The SMTP server's port.")
    smtp_sender: str = Field(default="alerts@alerting.local", description="`From:` of every email.")
    smtp_connections: int = Field(default=8, description=(
        "SMTP connections kept open, each sending one email at a time."))
    smtp_timeout_seconds: float = Field(default=30.0, description="The timeout of each SMTP step.")
    smtp_username: str = Field(default="", description="Log in to the SMTP server as this user, when set.")
    smtp_password: SecretStr | None = Field(default=None, description="That user's password.")
    smtp_starttls: bool = Field(default=False, description=(
        "Use STARTTLS, and fail when the server does not offer it; its certificate is verified against the "
        "system's trust store (`SSL_CERT_FILE` names another CA file)."))


class PolicySettings(AlertingSettings):
    """The delivery policy of a client that set none: the sender delivers by it, the rule-service shows it."""

    # docs/architecture/ARCHITECTURE.md, "Delivery policy".

    default_group_by: tuple[str, ...] = Field(default=(), description=(
        "The default policy's grouping: which of `severity`, `source`, `name`, `rule` split a client's"
        ' notifications into groups, as a JSON list (`["severity","source"]`).'))
    default_group_wait_seconds: int = Field(default=10, description=(
        "The default policy's group_wait; 0 with no group_by sends each notification alone, at once."))
    default_group_interval_seconds: int = Field(default=300, description="The default policy's group_interval.")
    max_emails_per_hour: int = Field(default=100, description=(
        "Emails per client and recipient in any hour, for a client whose policy sets no limit."))


class ReceiverSettings(AlertingSettings):
    """Webhook and Slack receivers: their sealed signing secrets and what they may reach."""

    receiver_secret_key: SecretStr | None = Field(default=None, description=(
        "rule-service and sender: the key (32+ characters) that seals webhook signing secrets in"
        " Postgres; the rule-service seals new ones, the sender unseals them to sign."))
    outbound_allow_http: bool = Field(default=False, description=(
        "rule-service and sender: receivers' URLs may be plain http:// (the local stack's own receiver);"
        " false: HTTPS only."))
    outbound_allowed_networks: tuple[str, ...] = Field(default=(), description=(
        "rule-service and sender: networks (CIDR, JSON list) that receivers may reach although they are"
        " not public (loopback, private, link-local): none by default."))
