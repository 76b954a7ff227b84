"""A throwaway JWT issuer for the demo and tests: an RSA key, its JWKS, RS256 tokens."""

from __future__ import annotations

import base64
import json
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtIssuer:
    """Signs tokens that a RequestAuthentication with `jwks` accepts for `issuer`."""

    def __init__(self, issuer: str = "https://issuer.weft.example", kid: str = "demo") -> None:
        self.issuer = issuer
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def jwks(self) -> str:
        numbers = self._key.public_key().public_numbers()
        key = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
        return json.dumps({"keys": [key]})

    def token(self, subject: str, expires_in: float = 3600, issuer: str | None = None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        claims = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "iat": int(time.time()),
            "exp": int(time.time() + expires_in),
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def request_authentication(self, namespace: str = "default", app: str = "productpage") -> str:
        """The RequestAuthentication YAML that trusts this issuer's key for `app`."""
        return (
            "apiVersion: security.istio.io/v1\n"
            "kind: RequestAuthentication\n"
            f"metadata: {{name: {app}-jwt, namespace: {namespace}}}\n"
            "spec:\n"
            f"  selector: {{matchLabels: {{app: {app}}}}}\n"
            "  jwtRules:\n"
            f"  - issuer: {self.issuer}\n"
            f"    jwks: '{self.jwks}'\n"
        )
