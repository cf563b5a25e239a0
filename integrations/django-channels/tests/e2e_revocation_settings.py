"""Settings for the daphne processes of test_revocation_daphne.py: the listener on."""

import os

from .e2e_settings import *  # noqa: F403

WSTICKET_REDEEM_KEY = os.environ["E2E_REDEEM_KEY"]
WSTICKET_REVOCATION_LISTENER = True
