"""The API's bearer-token authentication: simplejwt's, with the token's user kept per process.

Every API request with a token read the user's row (simplejwt's ``get_user``: found, active,
token not revoked): about a third of what a polled read cost once its answer is kept
(``apps.core.api.response_cache``). Here each server process keeps the users it has read
with the version of the users table they were read at, the version the response cache
gives the table at every write (any process, at commit). While the version is unchanged
the kept user is served (a copy per request); any write to the users table (a password,
``is_active``, a deletion, a login's ``last_login``) changes it and the next request reads
the row again, with every check simplejwt makes.

The version is read before the row: a write committed in between leaves the row kept under
the old version, so the next request reads it again. No version (the embedded default
without Redis, Redis down, a version this process could not send): the row is read, as
simplejwt does.

A token's signature is checked once per process too: a token is the same text with the same
signature at every request, so once verified it is kept (by its text) until it expires, and
only its expiry is checked again (at or after ``exp`` it is verified anew, which refuses it).
Access tokens carry no revocation of their own: a password change or a deactivation is told
by the user's row, above.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.settings import api_settings

from apps.core.api import response_cache

#: Users kept per process, at most (a process serving more starts over: a read each).
KEPT_USERS_MAX = 10_000

_kept = response_cache.KeptPerProcess(KEPT_USERS_MAX)

#: Verified tokens kept per process, at most (by their text).
KEPT_TOKENS_MAX = 10_000

_verified: dict[bytes, Any] = {}


class JWTAuthentication(authentication.JWTAuthentication):
    def get_validated_token(self, raw_token):
        token = _verified.get(raw_token)
        if token is not None and time.time() < token.payload.get("exp", 0):
            return token
        token = super().get_validated_token(raw_token)  # a bad signature, type or expiry: raises
        if len(_verified) >= KEPT_TOKENS_MAX:
            _verified.clear()
        _verified[raw_token] = token
        return token

    def get_user(self, validated_token):
        # A token revoked by a password change is told by the token, not the row: always read then.
        version = (
            None
            if api_settings.CHECK_REVOKE_TOKEN
            else response_cache.table_version(self.user_model._meta.db_table)
        )
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        kept = _kept.get(user_id, version)
        if kept is not _kept.MISSING:
            return copy.copy(kept)
        user = super().get_user(validated_token)  # not found, inactive or revoked: raises
        _kept.keep(user_id, version, copy.copy(user))
        return user


class JWTScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of ``JWTAuthentication`` (drf-spectacular matches exact classes)."""

    target_class = JWTAuthentication
