"""Where a ticket travels in a handshake, and how to take it out.

A page carries its ticket either in the query string (``?ticket=wst_...``) or
as a subprotocol entry ``wsticket.<ticket>`` next to its own protocols (a page
without a protocol of its own offers ``wsticket`` too, so that the server has
something to select). :func:`take_tickets` finds every ticket and returns the
scope parts without them, so the application behind the middleware never
sees one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

#: The query-string parameter that carries a ticket.
QUERY_PARAM = "ticket"
#: Offered by a page that has no subprotocol of its own; selectable.
SUBPROTOCOL = "wsticket"
#: A subprotocol entry starting with this carries a ticket; never selectable.
SUBPROTOCOL_PREFIX = "wsticket."

_PROTOCOL_HEADER = b"sec-websocket-protocol"
_TICKET_PREFIX = "wst_"
_TICKET_MAX_LEN = 256
# The prefix, then A-Z a-z 0-9 _ - up to _TICKET_MAX_LEN in all: one regex
# match (a loop over the characters cost a few µs per handshake).
_TICKET_RE = re.compile(
    re.escape(_TICKET_PREFIX) + f"[A-Za-z0-9_-]{{0,{_TICKET_MAX_LEN - len(_TICKET_PREFIX)}}}"
)


@dataclass(frozen=True)
class Carried:
    tickets: list[str]
    """Every ticket found, possibly empty strings (``?ticket=``)."""
    query_string: bytes
    subprotocols: list[str]
    headers: list[tuple[bytes, bytes]]


def _form_decode(raw: bytes) -> bytes:
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _strip_query(query_string: bytes) -> tuple[list[str], bytes]:
    """Remove every ``ticket`` parameter; keep the other parameters byte for byte."""
    tickets: list[str] = []
    kept: list[bytes] = []
    changed = False
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        # Compare the decoded name: Django's QueryDict would also decode
        # "tick%65t" to "ticket", and that copy must not get through either.
        if _form_decode(name) == QUERY_PARAM.encode():
            changed = True
            try:
                tickets.append(_form_decode(value).decode("utf-8"))
            except UnicodeDecodeError:
                tickets.append("\ufffd")  # malformed: refused, never redeemed
            continue
        kept.append(part)
    return tickets, (b"&".join(kept) if changed else query_string)


def _is_ticket_entry(entry: str) -> bool:
    # In any letter case: such an entry is never an application protocol, and
    # never selected or passed on.
    return entry.strip().lower().startswith(SUBPROTOCOL_PREFIX)


def _strip_protocol_header(value: bytes) -> bytes | None:
    entries = value.split(b",")
    kept = [e for e in entries if not _is_ticket_entry(unquote(e.decode("latin-1")))]
    if len(kept) == len(entries):
        return value
    if not kept:
        return None
    return b",".join(kept).strip()


def take_tickets(scope: Mapping[str, Any]) -> Carried:
    tickets, query_string = _strip_query(bytes(scope.get("query_string") or b""))

    subprotocols: list[str] = []
    for entry in scope.get("subprotocols") or ():
        if _is_ticket_entry(entry):
            tickets.append(entry.strip()[len(SUBPROTOCOL_PREFIX) :])
        else:
            subprotocols.append(entry)

    headers: list[tuple[bytes, bytes]] = []
    for name, value in scope.get("headers") or ():
        if name.lower() == _PROTOCOL_HEADER:
            stripped = _strip_protocol_header(value)
            if stripped is not None:
                headers.append((name, stripped))
        else:
            headers.append((name, value))

    return Carried(
        tickets=tickets, query_string=query_string, subprotocols=subprotocols, headers=headers
    )


def looks_like_ticket(ticket: str) -> bool:
    """A cheap local check before a round trip; wsticket does the real parsing."""
    return _TICKET_RE.fullmatch(ticket) is not None


def origin_of(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """The handshake's ``Origin`` header, and whether it was usable.

    No header gives ``(None, True)``. More than one gives ``(None, False)``:
    which of them would be the page's is anyone's guess.
    """
    values = [value for name, value in headers if name.lower() == b"origin"]
    if not values:
        return None, True
    if len(values) > 1:
        return None, False
    return values[0].decode("latin-1"), True


def select_subprotocol(
    scope: Mapping[str, Any], supported: Iterable[str] | None = None
) -> str | None:
    """The subprotocol to accept the handshake with, or ``None``.

    Pass the value to ``accept()``: a browser fails the handshake when the
    page offered subprotocols and the server selects none of them.

    - With ``supported``, the first offered protocol that is in it.
    - Without, the first offered protocol other than ``wsticket``: the
      application's own.
    - Else ``"wsticket"`` when it was offered (a page with no protocol of
      its own), else ``None`` (nothing was offered).

    A ``wsticket.<ticket>`` entry is never returned, even from a scope the
    middleware has not cleaned.
    """
    offered = [
        p
        for p in scope.get("subprotocols") or ()
        if isinstance(p, str) and not _is_ticket_entry(p)
    ]
    wanted = None if supported is None else set(supported)
    for protocol in offered:
        if protocol == SUBPROTOCOL:
            continue
        if wanted is None or protocol in wanted:
            return protocol
    return SUBPROTOCOL if SUBPROTOCOL in offered else None
