"""Cross-site request forgery protection for the dashboard's actions: a random session cookie
(HttpOnly, SameSite=Strict) and, in every form, an HMAC of it under a per-process key. A POST
without both, or from another origin, is refused: a page elsewhere cannot make the user's
browser redrive or purge a queue."""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "taskqueue_session"
FIELD = "csrf"


class CsrfGuard:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def token(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()

    def valid(self, session: str | None, token: str | None) -> bool:
        if not session or not token:
            return False
        return hmac.compare_digest(self.token(session), token)
