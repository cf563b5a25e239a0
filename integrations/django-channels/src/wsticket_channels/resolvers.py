"""Turning a redeemed ticket's ``user_id`` into a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist, ValidationError


def default_user_resolver(user_id: str, claims: dict[str, Any]) -> AbstractBaseUser | None:
    """The active user whose primary key is ``user_id``, else ``None``.

    Synchronous: the middleware runs it with ``database_sync_to_async``.
    Like Django's ``ModelBackend``, it refuses users with ``is_active=False``.
    """
    model = get_user_model()
    try:
        user: AbstractBaseUser = model._default_manager.get(pk=user_id)
    except (ObjectDoesNotExist, ValidationError, ValueError, TypeError, OverflowError):
        return None
    if not getattr(user, "is_active", True):
        return None
    return user
