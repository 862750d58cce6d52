"""The Ortto calls behind account links: link or unlink people, find or create an account.

Sources: Ortto's pages "manage organization association: add/remove" (a-280), "adding and
removing people from organizations" (a-231), and the legacy organizations add/remove
reference; see ../shared/reference/ortto-api.md, "People linked to accounts".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from target_ortto import api
from target_ortto.client import OrttoClient
from target_ortto.objects import ACCOUNT

# THE ONE PLACE the call's form is chosen. Ortto's pages spell the account key three ways:
# `accounts_id` (a-280's example), `account_id` (a-231's field list) and `organization_id`
# with the legacy `PUT /v1/organizations/contacts/add|remove` (the legacy reference, and
# both public clients that link people in production). The legacy form is the best
# attested, so it is the one sent; people go as `inclusion_ids` (person IDs), Ortto's
# documented key. Ortto answers `{}` whatever it did (it ignores keys it does not know), so
# only reading a person's `idt::o` back proves a link: tests/test_live_ortto.py does.
LINK_PATH = "/v1/organizations/contacts/{action}"
ACCOUNT_KEY = "organization_id"
PEOPLE_KEY = "inclusion_ids"
ACTIONS = ("add", "remove")
# Insert mode (merge_strategy 3): creating a missing account never changes an existing one.
CREATE_OPTIONS_STRATEGY = 3


def contacts(client: OrttoClient, action: str, account_id: str, person_ids: Sequence[str]) -> None:
    """Link (`add`) or unlink (`remove`) up to 100 people to one account. Ortto's answer is
    `{}` and itemises nothing (recorded), so a 2xx is all there is to go by."""
    if action not in ACTIONS:
        raise ValueError(action)
    client.request(
        "PUT",
        LINK_PATH.format(action=action),
        {ACCOUNT_KEY: account_id, PEOPLE_KEY: list(person_ids)},
    )


def find_account(client: OrttoClient, by: str, value: str) -> str | None:
    """The ID of the account whose `by` field is `value` (`POST /v1/accounts/get`)."""
    return api.find_id(client, ACCOUNT, by, value)


def create_account(client: OrttoClient, by: str, value: str) -> api.Outcome:
    """Create the account `by` = `value`, in insert mode (an existing one stays untouched);
    the outcome carries its ID."""
    options = api.MergeOptions(
        merge_by=(by,),
        merge_strategy=CREATE_OPTIONS_STRATEGY,
        find_strategy=0,
        skip_non_existing=False,
        async_merge=False,
    )
    body: dict[str, Any] = {"fields": {by: value}}
    return api.merge(client, ACCOUNT, [body], options)[0]
