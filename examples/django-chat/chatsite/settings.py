"""Settings of the chat example: a local demo beside `wsticket serve --dev`.

Not a production configuration: DEBUG is on, the secret key is fixed, and
the wsticket keys are the public demo keys that only `serve --dev` accepts.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent  # examples/django-chat
REPO_ROOT = BASE_DIR.parent.parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-wsticket-chat-example-only-never-deploy-this"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
# localhost is the origin `serve --dev` allows; 127.0.0.1 is the same server
# under another origin, which wsticket refuses (see the README).
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "daphne",  # first: `manage.py runserver` then serves ASGI with daphne too
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # The e2e test points this at a throw-away file.
        "NAME": os.environ.get("DJANGO_CHAT_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

# One daphne process: the in-memory layer is enough to fan chat messages out
# to every connection. Several processes would need channels_redis.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# --- wsticket -------------------------------------------------------------
# Where wsticket runs (./run starts `wsticket serve --dev` there).
WSTICKET_URL = os.environ.get("CHAT_WSTICKET_URL", "http://127.0.0.1:8080")
# The demo keys of `wsticket serve --dev`. They are public (wsticket's README
# prints them) and no other mode accepts them. In production, give the
# middleware a key with "redeem" and the view one with "issue", from
# `wsticket keygen`, in files: WSTICKET_REDEEM_KEY_FILE, WSTICKET_ISSUE_KEY_FILE.
WSTICKET_REDEEM_KEY = "wsk_demo-redeem-key-not-for-production-00000000"
WSTICKET_ISSUE_KEY = "wsk_demo-issue-key-not-for-production-000000000"

# The browser client, served as it is from this checkout (see chat/views.py).
WSTICKET_CLIENT_JS = REPO_ROOT / "clients" / "js" / "index.js"

# daphne logs to stderr already (access log and root logger); these only
# set levels. wsticket_channels logs admissions, refusals and mints, never a
# ticket or a key.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{levelname} {name}: {message}", "style": "{"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "wsticket_channels": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "chat": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
