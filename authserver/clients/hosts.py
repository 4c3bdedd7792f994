"""Valid URI hosts: a DNS host name or an IP literal (RFC 3986 §3.2.2, RFC 1123 §2.1, S101).

A host name is dot-separated labels of ASCII letters, digits and hyphens (1 to 63 characters, no
hyphen at either end, 253 characters in all, one trailing dot allowed). An internationalised
domain name is accepted only in its ASCII form, the A-label (``xn--…``, RFC 5890 §2.3.2.1): the
Unicode form is refused with the A-label to register instead. IPv4 in dotted-decimal form and
IPv6 in brackets are the IP literals. Nothing else, so a host can never carry a separator
(``;``, ``,``, blanks, line separators) into a header built from it.
"""

from __future__ import annotations

import ipaddress
import re

MAX_HOST_NAME_LENGTH = 253
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_IPV4 = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")


def is_host_name(host: str) -> bool:
    """True for an ASCII DNS host name (case-insensitive, one trailing dot allowed)."""
    name = host.lower()
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > MAX_HOST_NAME_LENGTH or not name.isascii():
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False  # all-numeric: an IPv4 address or not a name at all
    return all(_LABEL.match(label) for label in labels)


def is_ip_literal(host: str) -> bool:
    """True for dotted-decimal IPv4 or an IPv6 address (the form inside ``[...]``)."""
    if _IPV4.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    if ":" in host and host.isascii() and "%" not in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return False


def is_valid_host(host: str) -> bool:
    """A host name or an IP literal (``host`` as ``urlsplit().hostname`` gives it)."""
    return is_ip_literal(host) or is_host_name(host)


def ascii_form(host: str) -> str | None:
    """The A-label form of an internationalised ``host`` (to suggest it), or None."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
