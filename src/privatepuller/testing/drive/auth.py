"""Service-account keys and JWT-bearer assertions for the fake Google token endpoint."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .. import issued

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_BAD_TIME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)
_SKEW = 300  # seconds of clock skew tolerated


class AssertionRejected(Exception):
    """The token endpoint answers 400 ``{"error": error, "error_description": ...}``."""

    def __init__(self, description: str, error: str = "invalid_grant") -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description = error, description


@functools.cache
def private_key() -> rsa.RSAPrivateKey:
    """One 2048-bit RSA key per process: generating keys is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_private_key() -> rsa.RSAPrivateKey:
    """Another key (a rotated one): slow, so only when a test asks for it."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_info(
    email: str, token_uri: str, key: rsa.RSAPrivateKey | None = None
) -> dict[str, str]:
    """A key file's JSON in Google's format, signed by `key` (default :func:`private_key`)."""
    key = key or private_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    for line in pem.splitlines():  # the key's body, line by line (one process-wide key)
        if "-----" not in line and len(line) >= 16:
            issued.record(None, "service-account private key", line)
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = hashlib.sha1(email.encode() + public_der).hexdigest()
    project = email.partition("@")[2].split(".")[0] or "course-project"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": str(int(key_id[:16], 16)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{quote(email)}",
        "universe_domain": "googleapis.com",
    }


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def assertion_key_id(assertion: str) -> str | None:
    """The `kid` in an assertion's header (which key signed it)."""
    try:
        header = json.loads(_b64url_decode(assertion.split(".")[0]))
    except ValueError:
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return None if kid is None else str(kid)


def verify_assertion(
    assertion: str,
    key_ids: Mapping[str, str],
    public_keys: Mapping[str, rsa.RSAPublicKey] | None = None,
) -> dict[str, Any]:
    """Check an RS256 JWT-bearer assertion and return its claims.

    ``key_ids`` maps ``private_key_id`` to ``client_email`` for the keys handed out (a
    deleted key is not in it); ``public_keys`` the ids of keys other than
    :func:`private_key`'s to their public keys. ``aud`` is not checked: google-auth always
    sends Google's own token URL there.
    """
    try:
        header_b64, payload_b64, sig_b64 = assertion.split(".")
        header = json.loads(_b64url_decode(header_b64))
        claims = json.loads(_b64url_decode(payload_b64))
        signature = _b64url_decode(sig_b64)
    except ValueError:
        raise AssertionRejected("Invalid JWT.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRejected("Invalid JWT.")
    if header.get("alg") != "RS256":
        raise AssertionRejected("Invalid JWT Signature.")
    email = claims.get("iss")
    if email not in key_ids.values():
        raise AssertionRejected("Invalid grant: account not found")
    kid = header.get("kid")
    if kid is not None and key_ids.get(kid) != email:
        raise AssertionRejected("Invalid JWT Signature.")
    public = (public_keys or {}).get(kid or "") or private_key().public_key()
    try:
        public.verify(
            signature, f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise AssertionRejected("Invalid JWT Signature.") from None
    iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise AssertionRejected(_BAD_TIME)
    if exp <= now - _SKEW or iat > now + _SKEW or exp - iat > 3600:
        raise AssertionRejected(_BAD_TIME)
    if not str(claims.get("scope", "")).strip():
        raise AssertionRejected(
            "Invalid OAuth scope or ID token audience provided.", "invalid_scope"
        )
    return claims
