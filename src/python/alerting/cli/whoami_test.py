"""alertctl whoami against a real rule-service."""

from __future__ import annotations

import json

from alerting.testsupport.alertctl import alertctl, key_id
from alerting.testsupport.calls import new_client, tenant_key
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings


async def test_whoami_shows_the_key_the_calls_present(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        admin = await alertctl(service, "whoami")
        assert (admin.exit_code, admin.stderr) == (0, ""), admin.output
        header, _, row = admin.stdout.splitlines()
        # An ADMIN key belongs to no client: its client_id cell is empty.
        assert (header.split(), row.split()[:3]) == (
            ["key_id", "role", "client_id", "created_by", "created_at", "expires_at", "revoked_at", "name"],
            [key_id(service.admin_key), "ADMIN", "bootstrap"])
        client_id = await new_client(service)
        made = await tenant_key(service, client_id)
        [tenant] = json.loads((await alertctl(service, "--json", "whoami", key=made.key)).stdout)
        assert (tenant["key_id"], tenant["role"], tenant["client_id"]) == (made.api_key.key_id, "ROLE_TENANT",
                                                                           client_id)
