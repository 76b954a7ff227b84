"""The state-of-the-world machine both the ADS and the SDS servers use: what each request
means, and what the subscription then records."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from weft.xds.subscription import Received, Subscription, receive, response

SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def request(
    names: Iterable[str] = (), answering: discovery_pb2.DiscoveryResponse | None = None,
    error: str | None = None,
) -> discovery_pb2.DiscoveryRequest:  # fmt: skip
    found = discovery_pb2.DiscoveryRequest(type_url=SECRET, resource_names=list(names))
    if answering is not None:
        found.response_nonce = answering.nonce
        found.version_info = answering.version_info
    if error is not None:
        found.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return found


def sent(sub: Subscription, version: str, nonce: str) -> discovery_pb2.DiscoveryResponse:
    return response(sub, SECRET, version, [], nonce)


def test_first_request_asks_whatever_version_it_claims() -> None:
    sub = Subscription()
    first = request(["default"])
    first.version_info = "from-an-earlier-server"
    assert receive(sub, first) is Received.ASK
    assert sub.requested and sub.names == {"default"}
    assert sub.status == "NOT SENT"


def test_ack_records_the_version_and_a_plain_ack_asks_nothing() -> None:
    sub = Subscription()
    receive(sub, request(["default"]))
    answer = sent(sub, "v1", "n1")
    assert sub.status == "STALE"  # sent, not yet accepted
    assert receive(sub, request(["default"], answer)) is Received.ACK
    assert (sub.acked_version, sub.status) == ("v1", "SYNCED")


def test_ack_naming_other_resources_asks_for_them() -> None:
    sub = Subscription()
    receive(sub, request(["default"]))
    answer = sent(sub, "v1", "n1")
    assert receive(sub, request(["default", "ROOTCA"], answer)) is Received.ASK
    assert sub.acked_version == "v1" and sub.names == {"default", "ROOTCA"}


def test_nack_keeps_the_message_until_a_later_ack() -> None:
    sub = Subscription()
    receive(sub, request())
    bad = sent(sub, "v1", "n1")
    assert receive(sub, request(answering=bad, error="KEY_VALUES_MISMATCH")) is Received.NACK
    assert (sub.nack, sub.acked_version, sub.status) == ("KEY_VALUES_MISMATCH", "", "STALE")
    good = sent(sub, "v2", "n2")
    assert receive(sub, request(answering=good)) is Received.ACK
    assert (sub.nack, sub.status) == (None, "SYNCED")


def test_an_answer_to_a_superseded_response_changes_nothing() -> None:
    sub = Subscription()
    receive(sub, request())
    old = sent(sub, "v1", "n1")
    sent(sub, "v2", "n2")
    assert receive(sub, request(answering=old, error="late")) is Received.SUPERSEDED
    assert receive(sub, request(answering=old)) is Received.SUPERSEDED
    assert (sub.nack, sub.acked_version, sub.status) == (None, "", "STALE")


def test_wildcard_is_no_names() -> None:
    sub = Subscription()
    receive(sub, request(["*"]))
    assert sub.names == frozenset()
