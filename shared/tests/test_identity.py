import uuid

import jwt
import pytest

from tollgate_shared.identity import Identity, generate_keypair, identity_signer, identity_verifier


def test_identity_round_trips_through_a_signed_token():
    private, public = generate_keypair()
    identity = Identity(
        principal_type="key",
        principal_id=str(uuid.uuid4()),
        org_id=uuid.uuid4(),
        scopes=frozenset({"read"}),
        plan="pro",
    )
    token = identity_signer(private).sign(identity.to_claims())
    assert Identity.from_claims(identity_verifier(public).verify(token)) == identity


def test_token_from_another_key_or_expired_is_refused():
    private, public = generate_keypair()
    other_private, _ = generate_keypair()
    claims = Identity(principal_type="anonymous").to_claims()
    with pytest.raises(jwt.InvalidSignatureError):
        identity_verifier(public).verify(identity_signer(other_private).sign(claims))
    with pytest.raises(jwt.ExpiredSignatureError):
        identity_verifier(public).verify(identity_signer(private).sign(claims, ttl_seconds=-60))


def test_admin_scope_implies_others_and_super_admin_every_role():
    key = Identity(principal_type="key", scopes=frozenset({"admin"}))
    assert key.has_scope("write") and key.has_scope("read")
    assert not Identity(principal_type="key", scopes=frozenset({"read"})).has_scope("write")
    admin = Identity(principal_type="user", roles=frozenset({"super_admin"}))
    assert admin.has_role("billing_admin")
