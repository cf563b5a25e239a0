"""Minimal Django settings for the tests.

WSTICKET_URL is set per test by fixtures (the wsticket started for the
session, a closed port, a server that never answers).
"""

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The page's origin, as wsticket --dev allows it; Django's CSRF check compares
# the Origin of a POST with these.
CSRF_TRUSTED_ORIGINS = ["http://localhost:3000"]

# The demo keys of `wsticket serve --dev`: public, and refused outside --dev.
WSTICKET_URL = "http://127.0.0.1:9"
WSTICKET_REDEEM_KEY = "wsk_demo-redeem-key-not-for-production-00000000"
WSTICKET_ISSUE_KEY = "wsk_demo-issue-key-not-for-production-000000000"
WSTICKET_TIMEOUT = 2
