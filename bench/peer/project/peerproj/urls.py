"""The ticket view at the path django-channels-jwt's README gives:
GET /api/auth/auth_for_ws_connection/ with `Authorization: Token <key>`."""
from django.urls import include, path

urlpatterns = [
    path("api/auth/", include("django_channels_jwt.urls")),
]
