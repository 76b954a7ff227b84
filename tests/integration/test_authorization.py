"""AuthorizationPolicy and RequestAuthentication enforced by real sidecars."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import MeshClient, apply_and_sync, bookinfo_spec
from weft.cli.jwt_issuer import JwtIssuer
from weft.cli.mesh import LocalMesh

pytestmark = pytest.mark.integration

REVIEWS = "http://reviews:9080/reviews/0"
ISSUER = "https://issuer.weft.test"


@pytest.fixture
async def clients(mesh: LocalMesh) -> dict[str, MeshClient]:
    """reviews (the server) and two callers with sidecars: productpage and ratings."""
    specs = [bookinfo_spec("productpage"), bookinfo_spec("ratings"), bookinfo_spec("reviews")]
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=3)
    out = {
        "productpage": MeshClient(mesh, "productpage-v1"),
        "ratings": MeshClient(mesh, "ratings-v1"),
    }
    yield out  # type: ignore[misc]
    for c in out.values():
        await c.close()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def settled_status(
    client: MeshClient, url: str = REVIEWS, headers: dict[str, str] | None = None
) -> int:
    """The status once a listener change has reached the connection in use.

    Envoy applies a new inbound filter chain to new connections and drains old ones: a
    keep-alive connection opened before a policy change may serve one more request under the
    old policy. So: the status of two requests in a row that agree, within a deadline.
    """
    deadline = time.monotonic() + 15
    last = await status(client, url, headers)
    while time.monotonic() < deadline:
        now = await status(client, url, headers)
        if now == last:
            return now
        last = now
    raise AssertionError(f"{url} never settled (last {last})")


async def status(
    client: MeshClient, url: str = REVIEWS, headers: dict[str, str] | None = None
) -> int:
    code, _, _ = await client.get(url, headers)
    return code


async def test_allow_policy_admits_one_caller_and_denies_another(
    mesh: LocalMesh, clients: dict[str, MeshClient], tmp_path: Path
) -> None:
    assert await status(clients["ratings"]) == 200  # no policy: everyone may call
    policy = write(
        tmp_path,
        "allow.yaml",
        """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-callers, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]
    to: [{operation: {methods: [GET], paths: ["/reviews/*"]}}]
""",
    )
    await apply_and_sync(mesh, policy)
    assert await settled_status(clients["productpage"]) == 200
    assert await settled_status(clients["ratings"]) == 403
    # The allowed caller, outside the allowed paths: no rule matches, so denied.
    assert await status(clients["productpage"], "http://reviews:9080/health") == 403


async def test_deny_comes_before_allow(
    mesh: LocalMesh, clients: dict[str, MeshClient], tmp_path: Path
) -> None:
    policy = write(
        tmp_path,
        "deny.yaml",
        """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-product-7, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/reviews/7]}}]
    when: [{key: "request.headers[end-user]", notValues: [admin]}]
""",
    )
    await apply_and_sync(mesh, policy)
    assert await settled_status(clients["productpage"]) == 200
    assert await settled_status(clients["productpage"], "http://reviews:9080/reviews/7") == 403
    admin = {"end-user": "admin"}
    assert await status(clients["productpage"], "http://reviews:9080/reviews/7", admin) == 200


async def test_jwt_invalid_token_401_missing_passes_until_required(
    mesh: LocalMesh, clients: dict[str, MeshClient], tmp_path: Path
) -> None:
    issuer = JwtIssuer(ISSUER)
    request_authn = write(tmp_path, "jwt.yaml", issuer.request_authentication(app="reviews"))
    await apply_and_sync(mesh, request_authn)
    client = clients["productpage"]
    await settled_status(client)
    good = {"authorization": f"Bearer {issuer.token('alice')}"}
    forged = {"authorization": f"Bearer {JwtIssuer(ISSUER).token('alice')}"}
    # Envoy allows 60 s of clock skew: ten minutes past expiry is expired.
    expired = {"authorization": f"Bearer {issuer.token('alice', expires_in=-600)}"}
    assert await status(client, headers=good) == 200
    assert await status(client, headers=forged) == 401
    assert await status(client, headers=expired) == 401
    assert await status(client) == 200  # no token: authentication alone lets it pass

    require = write(
        tmp_path,
        "require.yaml",
        f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews-needs-a-user, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/*"]}}}}]
""",
    )
    await apply_and_sync(mesh, require)
    assert await settled_status(client) == 403
    assert await status(client, headers=good) == 200
