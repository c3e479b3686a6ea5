"""Identity tokens for forwarded requests, signed once per caller and reused while fresh.

Signing costs about 70 µs, a large share of a request's budget; the same caller gets the same
token until half its lifetime has passed (ADR 0001). The claims are the whole cache key, so a
change of scopes, roles or plan yields a new token at once.
"""

import time

from tollgate_shared.identity import Identity, TokenSigner

MAX_ENTRIES = 100_000


class IdentityTokens:
    def __init__(self, signer: TokenSigner) -> None:
        self._signer = signer
        self._reuse_seconds = signer.ttl_seconds / 2
        self._tokens: dict[Identity, tuple[str, float]] = {}

    def token_for(self, identity: Identity) -> str:
        now = time.monotonic()
        cached = self._tokens.get(identity)
        if cached is not None and now - cached[1] < self._reuse_seconds:
            return cached[0]
        token = self._signer.sign(identity.to_claims())
        if len(self._tokens) >= MAX_ENTRIES:
            self._tokens.clear()
        self._tokens[identity] = (token, now)
        return token
