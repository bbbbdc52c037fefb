import pytest

from streamer.lsn import format_lsn, parse_lsn


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/1AFABE8", 0x1AFABE8),
        ("16/B374D848", (0x16 << 32) | 0xB374D848),
        ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
    ],
)
def test_round_trip(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert format_lsn(value) == text


@pytest.mark.parametrize("bad", ["", "0", "0/", "1/2/3", "G/0", "0/123456789", "0/0'; DROP"])
def test_rejects_anything_that_is_not_an_lsn(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_lsn(bad)


def test_format_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        format_lsn(-1)
    with pytest.raises(ValueError):
        format_lsn(2**64)
