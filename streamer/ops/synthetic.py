"""Realistic synthetic payloads in the seed's three families (pure, seeded, no I/O).

Used by the demo, the tests and the benchmarks so all three see the same mix. A small
share of rows is deliberately bad (so rejections show up), controlled by `bad_ratio`.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

# The seed's three sample payloads, verbatim.
SEED_ROWS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {
            "amt": 25.84,
            "p_id": "Stripe",
            "exec_ms": 402,
            "st_code": 1,
            "server_txt": "00_SUCCESS",
            "card_country": "ES",
        },
        {"id": "06cbe458-8bfd-408b-81d4-215a5b1b4594", "name": "Falabella", "country": "CO"},
    ),
    (
        {
            "type": "XML_BLOB",
            "content": "<Tx><MerchID>2040ca76-48fa-4daa-b29d-2ebb956fd1ee"
            "</MerchID><Org>CL</Org><Val>129.97</Val><Stat>APPROVED</Stat></Tx>",
        },
        {"id": "2040ca76-48fa-4daa-b29d-2ebb956fd1ee", "name": "Shopito", "country": "PE"},
    ),
    (
        {
            "status": "APPROVED",
            "provider": "PayU",
            "origin_iso": "AR",
            "amount_details": {"value": 422.45, "currency": "USD"},
        },
        {"id": "38b80531-5702-43b7-84e0-e7fb86bd73b5", "name": "Netflix", "country": "PE"},
    ),
]

MERCHANTS = [
    ("Falabella", "CO"),
    ("Shopito", "PE"),
    ("Netflix", "PE"),
    ("Rappi", "CO"),
    ("MercadoLibre", "AR"),
    ("Cornershop", "CL"),
    ("Linio", "MX"),
    ("Dafiti", "BR"),
]
COUNTRIES = ["AR", "BR", "CL", "CO", "MX", "PE", "ES", "US", "UY"]
CURRENCIES = ["USD", "EUR", "BRL", "MXN", "COP", "CLP", "ARS", "PEN"]
SERVER_TEXTS = ["00_SUCCESS", "05_DO_NOT_HONOR", "51_INSUFFICIENT_FUNDS", "91 ISSUER UNAVAILABLE"]
STATUSES = ["APPROVED", "DECLINED", "PENDING", "REFUNDED", "CANCELLED", "ERROR"]
BAD_PAYLOADS: list[dict[str, Any]] = [
    {"amt": "-5.00", "p_id": "Stripe", "st_code": 1},
    {
        "status": "APPROVED",
        "provider": "PayU",
        "origin_iso": "ZZ",
        "amount_details": {"value": 10, "currency": "USD"},
    },
    {"status": "APPROVED", "provider": "PayU", "amount_details": {"value": 1, "currency": "US$"}},
    {"type": "XML_BLOB", "content": "<Tx><Val>1.00</Val"},
    {"hello": "world"},
]


class PayloadFactory:
    """Seeded generator of (data, merchant) pairs."""

    def __init__(self, seed: int = 7, bad_ratio: float = 0.03) -> None:
        self._rng = random.Random(seed)
        self._bad_ratio = bad_ratio
        self._merchant_ids = [str(uuid.UUID(int=self._rng.getrandbits(128))) for _ in MERCHANTS]

    def _merchant(self) -> dict[str, Any]:
        i = self._rng.randrange(len(MERCHANTS))
        name, country = MERCHANTS[i]
        return {"id": self._merchant_ids[i], "name": name, "country": country}

    def _amount(self, currency: str | None) -> str:
        cents = self._rng.randrange(100, 5_000_000)
        if currency == "CLP":  # no minor unit in ISO 4217
            return str(cents)
        return f"{cents // 100}.{cents % 100:02d}"

    def one(self) -> tuple[dict[str, Any], dict[str, Any]]:
        rng = self._rng
        merchant = self._merchant()
        if rng.random() < self._bad_ratio:
            return dict(rng.choice(BAD_PAYLOADS)), merchant
        family = rng.random()
        if family < 0.45:
            data: dict[str, Any] = {
                "amt": float(self._amount(None)),
                "p_id": rng.choice(["Stripe", "stripe", "STRIPE "]),
                "exec_ms": rng.randrange(40, 2000),
                "st_code": rng.choice([0, 1, 1, 1]),
                "server_txt": rng.choice(SERVER_TEXTS),
                "card_country": rng.choice(COUNTRIES),
            }
            if rng.random() < 0.5:
                data["currency"] = rng.choice(["USD", "EUR"])
        elif family < 0.85:
            currency = rng.choice(CURRENCIES)
            data = {
                "status": rng.choice(STATUSES),
                "provider": "PayU",
                "origin_iso": rng.choice(COUNTRIES),
                "amount_details": {"value": self._amount(currency), "currency": currency},
            }
        else:
            cur = rng.choice(CURRENCIES)
            data = {
                "type": "XML_BLOB",
                "content": f"<Tx><MerchID>{merchant['id']}</MerchID>"
                f"<Org>{rng.choice(COUNTRIES)}</Org><Val>{self._amount(cur)}</Val>"
                f"<Stat>{rng.choice(STATUSES)}</Stat><Cur>{cur}</Cur></Tx>",
            }
        return data, merchant

    def many(self, count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [self.one() for _ in range(count)]
