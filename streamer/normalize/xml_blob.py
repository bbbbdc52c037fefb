"""XML blob payloads: `{"type": "XML_BLOB", "content": "<Tx>...</Tx>"}`.

`<Tx>` children read: `MerchID`, `Org` (country), `Val` (amount), `Stat` (status),
`Cur` (or `Currency`; `Cur` wins), `Provider`. Other children are ignored.

Rules:

* `content` must be a string (else `malformed_xml`) of at most `MAX_XML_BYTES` UTF-8
  bytes (else `payload_too_large`, decided before any parsing).
* Parsing uses defusedxml with DTDs, entity declarations and external references
  forbidden: any of them is `unsafe_xml`. Anything expat cannot parse (including
  characters UTF-8 cannot encode) is `malformed_xml`, as is a root other than a
  namespace-less `<Tx>`, a known child given twice (two `<Val>`s are ambiguous), or a
  known child containing elements.
* Element text is XML-trimmed (space, tab, CR, LF); empty or absent elements count as
  missing: a missing `Val` is `invalid_amount` like in JSON, a missing `MerchID` skips
  the merchant cross-check, a missing `Org`/`Cur` is None, a missing `Stat` is unknown,
  a missing `Provider` is `unknown`.
* Speed: defusedxml can only wrap the pure-Python ElementTree parser (~14 µs for a
  typical blob, most of an XML row's cost). Every construct it guards against (DTD,
  entity declaration, external reference) is a markup declaration, which starts with
  `<!`; expat is given the document as `str`, so no declared encoding can hide one. A
  document without `<!` therefore has nothing to defuse and is parsed by the same expat
  through the C ElementTree parser (~5 µs). Everything else still goes through
  defusedxml. Both paths give the same result (tests/unit/normalize/test_xml_blob.py).
* Nesting depth is bounded by the size cap; expat and ElementTree build the tree
  without recursion and only `<Tx>`'s direct children are visited, so deep documents
  cannot raise `RecursionError`.
"""

from __future__ import annotations

from typing import Final
from xml.etree.ElementTree import Element, ParseError, XMLParser

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from streamer.normalize import status
from streamer.normalize.errors import Reject
from streamer.normalize.fields import (
    UNKNOWN_PROVIDER,
    Extracted,
    Family,
    JsonObject,
    normalize_provider,
)

MAX_XML_BYTES: Final = 256 * 1024
_MAX_UTF8_PER_CHAR: Final = 4
_ROOT: Final = "Tx"
_KNOWN: Final = frozenset({"MerchID", "Org", "Val", "Stat", "Cur", "Currency", "Provider"})
_XML_SPACE: Final = " \t\n\r"
_DECLARATION: Final = "<!"  # opens every DTD, entity or external reference (and more)


def claims(data: JsonObject) -> bool:
    """An XML blob for sure: `type` is exactly "XML_BLOB"."""
    return data.get("type") == "XML_BLOB"


def _utf8_size_exceeds(text: str, limit: int) -> bool:
    """Whether `text` is over `limit` UTF-8 bytes, encoding only when it matters."""
    if len(text) > limit:
        return True
    if len(text) * _MAX_UTF8_PER_CHAR <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def parse_defused(content: str) -> Element:
    """defusedxml's parser: DTDs, entity declarations and external references raise."""
    root: Element = fromstring(content, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    return root


def parse_plain(content: str) -> Element:
    """The C ElementTree parser: only for documents without markup declarations."""
    parser = XMLParser()
    parser.feed(content)
    return parser.close()


def parse(content: str) -> Element:
    """The document's root element; see the module docstring for the two parsers."""
    if _DECLARATION in content:
        return parse_defused(content)
    return parse_plain(content)


def _children(content: str) -> dict[str, str]:
    """Trimmed, non-empty text of the known `<Tx>` children, by tag."""
    try:
        root = parse(content)
    except DefusedXmlException as exc:
        raise Reject("unsafe_xml", f"forbidden XML construct: {type(exc).__name__}") from None
    except (ParseError, ValueError) as exc:  # ValueError: e.g. lone surrogates
        raise Reject("malformed_xml", f"unparseable XML: {str(exc)[:100]}") from None
    if root.tag != _ROOT:
        raise Reject("malformed_xml", f"root element is not <{_ROOT}>: {str(root.tag)[:100]!r}")
    values: dict[str, str] = {}
    seen: set[str] = set()
    for child in root:
        tag = child.tag
        if tag not in _KNOWN:
            continue
        if tag in seen:
            raise Reject("malformed_xml", f"<{tag}> appears more than once")
        seen.add(tag)
        if len(child):
            raise Reject("malformed_xml", f"<{tag}> contains elements")
        text = (child.text or "").strip(_XML_SPACE)
        if text:
            values[tag] = text
    return values


def extract(data: JsonObject) -> Extracted:
    """Check, parse and locate the XML blob fields; validation happens in `pipeline`."""
    content = data.get("content")
    if not isinstance(content, str):
        raise Reject("malformed_xml", "XML_BLOB content is not a string")
    if _utf8_size_exceeds(content, MAX_XML_BYTES):
        raise Reject("payload_too_large", f"XML content over {MAX_XML_BYTES} bytes")
    values = _children(content)
    provider = values.get("Provider")
    stat = values.get("Stat")
    currency = values.get("Cur")
    if currency is None:
        currency = values.get("Currency")
    return Extracted(
        provider=UNKNOWN_PROVIDER if provider is None else normalize_provider(provider),
        source_format="xml",
        amount=values.get("Val"),
        amount_field="Val",
        currency=currency,
        status=status.classify(stat),
        provider_status=stat,
        country=values.get("Org"),
        processing_ms=None,
        merchant_ref=values.get("MerchID"),
    )


FAMILY: Final = Family(name="xml", claims=claims, markers=frozenset(), extract=extract)
