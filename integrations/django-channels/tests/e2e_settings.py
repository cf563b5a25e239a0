"""Settings for the daphne process of test_daphne.py."""

import os

from .settings import *  # noqa: F403

WSTICKET_URL = os.environ["E2E_WSTICKET_URL"]
WSTICKET_USER_RESOLVER = "tests.resolvers.e2e_resolver"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "DEBUG"},
}
