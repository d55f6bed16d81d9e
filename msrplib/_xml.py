"""XML from peers, parsed safely: what IMDN and is-composing documents go through."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

__all__ = ["parse_xml"]


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
