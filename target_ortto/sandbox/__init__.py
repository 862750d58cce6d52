"""A local, offline stand-in for Ortto's API, for testing pipelines without an Ortto account.

It imports nothing from the target: it is an independent fake built from Ortto's documented
and recorded behaviour, so the target can be tested against it like against the real API.

    with Sandbox(api_key="key") as sandbox:
        ...  # point the target's api_url at sandbox.url, then inspect sandbox.store
"""

from .audiences import Audience, Subscription
from .body import ApiError
from .custom_fields import CustomField
from .faults import Faults, RequestRecord
from .records import Record
from .server import Sandbox
from .store import Store

__all__ = [
    "ApiError",
    "Audience",
    "CustomField",
    "Faults",
    "Record",
    "RequestRecord",
    "Sandbox",
    "Store",
    "Subscription",
]
