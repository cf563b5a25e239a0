"""Django signals sent by the revocation listener.

Connect receivers as usual (``ticket_reused.connect(handler)``); sync and
``async def`` receivers both work. They run in a task of their own, after the
listener has acted on the event, so a slow receiver never delays the closing
of sockets; an exception in a receiver is logged and ignored. The sender is
the :class:`~wsticket_channels.revocation.RevocationListener` class.

- ``user_revoked(user_id, audience, before, reason, closed, event_id)``:
  wsticket revoked a user's tickets (``audience`` ``None``: every audience;
  ``before`` an aware ``datetime``); ``closed`` is how many of this process's
  connections the listener closed with 4401.
- ``ticket_reused(user_id, audience, event_id)``: a ticket of that user was
  presented a second time, a likely leak. Informational: no socket is closed
  for it (wsticket may revoke the user too, which comes as ``user_revoked``).
- ``events_gap(detail)``: events may have been missed (the listener resumed
  after an id older than what wsticket keeps). Revocations in the gap were
  not applied to this process's open sockets.
"""

from __future__ import annotations

from django.dispatch import Signal

user_revoked = Signal()
ticket_reused = Signal()
events_gap = Signal()
