from __future__ import annotations

import pytest

from weft.ca.errors import AuthenticationFailed
from weft.ca.server import SigningStats, bearer_token


def test_bearer_token_from_grpc_metadata() -> None:
    metadata = (("user-agent", "grpc"), ("authorization", "Bearer weft1.a.b"))
    assert bearer_token(metadata) == "weft1.a.b"
    assert bearer_token((("authorization", "bearer  weft1.a.b "),)) == "weft1.a.b"


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        (None, "no bootstrap token"),
        ((("x-token", "weft1.a.b"),), "no bootstrap token"),
        ((("authorization", "Basic dXNlcjpwYXNz"),), "not 'Bearer <token>'"),
        ((("authorization", "Bearer"),), "not 'Bearer <token>'"),
    ],
)
def test_missing_or_other_credentials(metadata: object, says: str) -> None:
    with pytest.raises(AuthenticationFailed, match=says):
        bearer_token(metadata)


def test_refusals_add_up() -> None:
    stats = SigningStats(issued=3, unauthenticated=1, permission_denied=2, invalid_argument=4)
    assert stats.refused == 7
