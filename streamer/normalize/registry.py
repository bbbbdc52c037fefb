"""Payload families and how a payload is matched to one.

Detection rule, applied to `data` (a JSON object):

1. the first family in `FAMILIES` whose `claims` accepts it: XML if `type` is exactly
   "XML_BLOB", PayU-like if `amount_details` is present, Stripe-like if `amt` is present;
2. otherwise the first family sharing a *marker* key with it (e.g. `p_id`, `st_code`,
   `server_txt` for Stripe-like; `provider`, `status`, `origin_iso` for PayU-like), which
   then rejects it for its missing amount (`invalid_amount`);
3. otherwise `unrecognized_payload`.

The family is decided by payload *shape*, not by the provider name: the provider is
always read from `provider`, else `p_id`, so `{"provider": "PayU", "amt": 5}` is read
with the Stripe-like layout and reported as provider `payu`.

Adding a provider: write a module with an `extract` function and a `FAMILY`, then add
it to `FAMILIES` (and its provider name to `KNOWN_PROVIDERS` for metric labels).
"""

from __future__ import annotations

from typing import Final

from streamer.normalize import payu, stripe, xml_blob
from streamer.normalize.errors import Reject
from streamer.normalize.fields import UNKNOWN_PROVIDER, Family, JsonObject

FAMILIES: Final[tuple[Family, ...]] = (xml_blob.FAMILY, payu.FAMILY, stripe.FAMILY)

KNOWN_PROVIDERS: Final = frozenset({"stripe", "payu", UNKNOWN_PROVIDER})
"""Normalized provider names we recognise; anything else can be labelled "other"."""

_ALL_KEYS_HINT: Final = "type=XML_BLOB, amount_details, amt"


def detect(data: JsonObject) -> Family:
    """The family that handles `data`; raises `Reject` if none does."""
    for family in FAMILIES:
        if family.claims(data):
            return family
    for family in FAMILIES:
        if not family.markers.isdisjoint(data):
            return family
    raise Reject("unrecognized_payload", f"no known payload family (expected {_ALL_KEYS_HINT})")
