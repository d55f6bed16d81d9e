"""XML from peers, parsed safely: what IMDN and is-composing documents go through."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

__all__ = ["parse_xml", "parse_document"]


def parse_xml(data: bytes) -> Element:
    """The root of an XML document from a peer, parsed by defusedxml with document type
    declarations forbidden (so no entity expansion and no external references);
    ``ValueError`` saying why for anything else, an encoding Python cannot decode
    included."""
    try:
        root: Element = defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as error:
        raise ValueError("refused XML: %s" % type(error).__name__) from None
    except defusedxml.ElementTree.ParseError as error:
        raise ValueError("not XML: %s" % error) from None
    except (LookupError, ValueError) as error:  # an encoding it cannot read, say
        raise ValueError("not XML: %s" % error) from None
    return root


def parse_document(data: bytes, max_bytes: int, namespace: str, root: str,
                   kind: str) -> Element:
    """:func:`parse_xml` of a ``kind`` document (a notification, say) of at most
    ``max_bytes`` whose root element is ``root`` in ``namespace``; ``ValueError``
    saying why for anything else."""
    if len(data) > max_bytes:
        raise ValueError("a %s over %d bytes" % (kind, max_bytes))
    element = parse_xml(data)
    if element.tag != "{%s}%s" % (namespace, root):
        raise ValueError("not an %s document: <%s>" % (root, element.tag[:100]))
    return element
