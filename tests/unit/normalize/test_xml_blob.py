"""XML blob payloads: safety, size cap, structure, and field extraction."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from xml.etree.ElementTree import Element, ParseError

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamer.normalize import xml_blob
from streamer.normalize.xml_blob import MAX_XML_BYTES

from .helpers import accepted, reason, xml

M = {"id": "m1"}


def tx(body: str) -> dict[str, str]:
    return xml(f"<Tx>{body}</Tx>")


def test_fields() -> None:
    body = (
        "<MerchID>m1</MerchID><Org>chl</Org><Val>\n  129\n</Val><Stat>CAPTURED</Stat>"
        "<Cur>clp</Cur><Provider> PayU </Provider><Extra><Deep>ignored</Deep></Extra>"
    )
    result = accepted(tx(body), M)
    assert (result.country, result.amount, result.status, result.currency) == (
        "CL",
        Decimal(129),
        "approved",
        "CLP",
    )
    assert result.provider == "payu"
    assert result.provider_status == "CAPTURED"


def test_currency_element_names() -> None:
    assert accepted(tx("<Val>1</Val><Currency>eur</Currency>"), M).currency == "EUR"
    assert accepted(tx("<Val>1</Val><Cur>USD</Cur><Currency>EUR</Currency>"), M).currency == "USD"
    assert reason(tx("<Val>1.005</Val><Cur>USD</Cur>"), M) == "invalid_amount"
    assert reason(tx("<Val>1</Val><Cur>US$</Cur>"), M) == "invalid_currency"


def test_missing_and_empty_elements() -> None:
    result = accepted(tx("<Val>5</Val><Org/><Stat></Stat><Provider>  </Provider>"), M)
    assert (result.country, result.status, result.provider_status) == (None, "unknown", None)
    assert result.provider == "unknown"
    assert result.processing_ms is None


@pytest.mark.parametrize(
    "body",
    ["", "<Org>CL</Org>", "<Val/>", "<Val>  </Val>", "<Val>-1</Val>", "<Val>1e3</Val>"],
)
def test_bad_or_missing_val_is_invalid_amount(body: str) -> None:
    assert reason(tx(body), M) == "invalid_amount"


def test_bad_org_is_invalid_country() -> None:
    assert reason(tx("<Val>1</Val><Org>EU</Org>"), M) == "invalid_country"


def test_declarations_comments_and_cdata_are_fine() -> None:
    content = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><!-- note --><?pi data?>'
        "<Tx><Val><![CDATA[12.5]]></Val><Stat>ok</Stat></Tx>"
    )
    assert accepted(xml(content), M).amount == Decimal("12.5")
    # content is already text: a declared encoding does not change how it is read
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><Tx><Val>1</Val></Tx>'
    assert accepted(xml(utf16), M).amount == 1


@pytest.mark.parametrize(
    "content",
    [
        '<?xml version="1.0"?><!DOCTYPE Tx [<!ENTITY a "x">]><Tx><Val>1&a;</Val></Tx>',
        "<!DOCTYPE Tx><Tx><Val>1</Val></Tx>",
        '<!DOCTYPE Tx SYSTEM "file:///etc/passwd"><Tx/>',
        '<!DOCTYPE Tx PUBLIC "-//X//Y" "http://evil.example/x.dtd"><Tx/>',
        (  # billion laughs
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            "<Tx><Val>&lol2;</Val></Tx>"
        ),
        '<!DOCTYPE Tx [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Tx><Val>&xxe;</Val></Tx>',
    ],
)
def test_unsafe_xml(content: str) -> None:
    assert reason(xml(content), M) == "unsafe_xml"


@pytest.mark.parametrize(
    "content",
    [
        "",
        "   ",
        "not xml",
        "<Tx>",
        "<Tx><Val>1</Tx>",
        "<Tx></Tx><Tx></Tx>",
        "<Foo><Val>1</Val></Foo>",
        "<tx><Val>1</Val></tx>",
        '<Tx xmlns="urn:x"><Val>1</Val></Tx>',
        "<Tx><Val>1</Val><Val>2</Val></Tx>",
        "<Tx><Val>1<b>2</b></Val></Tx>",
        "<Tx><Val>&undefined;</Val></Tx>",
        "<Tx><Val>1\u0000</Val></Tx>",
        "<Tx><Val>1\ud800</Val></Tx>",
        "<Tx><Val>1\u0001</Val></Tx>",
    ],
)
def test_malformed_xml(content: str) -> None:
    assert reason(xml(content), M) == "malformed_xml"


@pytest.mark.parametrize("content", [None, 5, ["<Tx/>"], {"Tx": {}}, ...])
def test_content_must_be_a_string(content: object) -> None:
    data = {"type": "XML_BLOB", "content": content}
    if content is ...:
        del data["content"]
    assert reason(data, M) == "malformed_xml"


def padded(size_in_bytes: int, filler: str = " ") -> str:
    """A valid <Tx> blob of exactly `size_in_bytes` UTF-8 bytes."""
    head, tail = "<Tx><Val>1</Val><Pad>", "</Pad></Tx>"
    room = size_in_bytes - len(head) - len(tail)
    width = len(filler.encode())
    content = head + filler * (room // width) + " " * (room % width) + tail
    assert len(content.encode()) == size_in_bytes
    return content


def test_size_cap_is_inclusive() -> None:
    assert accepted(xml(padded(MAX_XML_BYTES)), M).amount == 1
    assert reason(xml(padded(MAX_XML_BYTES + 1)), M) == "payload_too_large"


def test_size_is_measured_in_utf8_bytes() -> None:
    content = padded(MAX_XML_BYTES + 3, filler="\u20ac")  # 3 bytes per character
    assert len(content) < MAX_XML_BYTES
    assert reason(xml(content), M) == "payload_too_large"
    assert accepted(xml(padded(MAX_XML_BYTES, filler="\u20ac")), M).amount == 1


def test_size_checked_before_parsing() -> None:
    bomb = "<!DOCTYPE Tx [<!ENTITY a 'x'>]><Tx>" + " " * MAX_XML_BYTES + "</Tx>"
    assert reason(xml(bomb), M) == "payload_too_large"


def test_deep_nesting_does_not_recurse() -> None:
    depth = 30_000
    deep = "<a>" * depth + "</a>" * depth
    assert accepted(tx(f"<Val>1</Val><X>{deep}</X>"), M).amount == 1
    assert reason(tx(f"<Val>{deep}</Val>"), M) == "malformed_xml"
    assert reason(tx("<Val>1</Val>" + "<a>" * depth), M) == "malformed_xml"


# -- the two parsers (see the module docstring of streamer.normalize.xml_blob) --------------
def test_documents_without_declarations_skip_the_pure_python_parser() -> None:
    import _elementtree  # noqa: PLC0415

    assert xml_blob.XMLParser is _elementtree.XMLParser  # not defusedxml's Python copy
    assert accepted(tx("<Val>1</Val><!-- a comment -->"), M).amount == 1  # via defusedxml


def _outcome(parser: Callable[[str], Element], content: str) -> object:
    """A comparable summary of a parse: the whole tree, or the kind of failure."""
    try:
        root = parser(content)
    except ParseError:
        return "ParseError"
    except ValueError:
        return "ValueError"
    return [(e.tag, e.attrib, e.text, e.tail) for e in root.iter()]


TEXT = st.sampled_from(
    ["1.5", " ", "\n", "\u00e9", "\u20ac", "\ud800", "\x00", "\x01", "&amp;", "&lt;",
     "&#60;", "&#x21;", "&#0;", "&foo;", "&", "<", ">", "]]>", "'", '"', "<?pi data?>"]
)  # fmt: skip
TAGS = st.sampled_from(["Val", "Cur", "MerchID", "a", "x:y", "Tx", "b c='1'", 'd e="&lt;"'])
PROLOG = st.sampled_from(
    ["", "<?xml version='1.0'?>", "<?xml version='1.0' encoding='latin-1'?>", " ", "junk"]
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Mostly well-formed `<Tx>` blobs with odd text, plus some broken ones."""
    children = []
    for tag in draw(st.lists(TAGS, max_size=5)):
        text = "".join(draw(st.lists(TEXT, max_size=4)))
        close = tag.split()[0] if draw(st.integers(0, 9)) else "Oops"
        children.append(f"<{tag}>{text}</{close}>")
    return draw(PROLOG) + "<Tx>" + "".join(children) + "</Tx>" + draw(st.sampled_from(["", "x"]))


@settings(max_examples=500, deadline=None)
@given(documents())
def test_both_parsers_agree_on_documents_without_declarations(content: str) -> None:
    assume("<!" not in content)
    assert _outcome(xml_blob.parse_plain, content) == _outcome(xml_blob.parse_defused, content)


@pytest.mark.parametrize(
    "content",
    [
        "<Tx><MerchID>m1</MerchID><Org>MX</Org><Val>12.50</Val><Stat>OK</Stat></Tx>",
        "<Tx><Val>1</Tx>",
        "<Tx><Val>&undefined;</Val></Tx>",
        "<Tx><Val>1\ud800</Val></Tx>",
        '<?xml version="1.0" encoding="UTF-16"?><Tx><Val>1</Val></Tx>',
        '<Tx xmlns="urn:x"><Val>1</Val></Tx>',
        "<a>" * 5000 + "</a>" * 5000,
    ],
)
def test_both_parsers_agree_on_known_documents(content: str) -> None:
    assert _outcome(xml_blob.parse_plain, content) == _outcome(xml_blob.parse_defused, content)
