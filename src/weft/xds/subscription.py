"""One subscription to one xDS type, state of the world: the names asked for, the response
last sent (version and nonce), and whether the client accepted it.

The ADS server (`weft.xds.sotw`) and the agent's SDS server (`weft.agent.sds`) both keep one
per stream and type, and read each request with `receive`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

WILDCARD = "*"


class Received(enum.Enum):
    """What a request means for its subscription."""

    SUPERSEDED = "superseded"  # answers a response that is not the last one sent: ignore it
    ACK = "ack"  # accepts the last response, and asks for the same names
    NACK = "nack"  # rejects the last response; the client keeps what it had
    ASK = "ask"  # a first request, or one naming other resources: must be answered


@dataclass
class Subscription:
    """One xDS type on one stream."""

    names: frozenset[str] = frozenset()  # explicit names; state of the world: empty is wildcard
    requested: bool = False
    sent_version: str = ""  # the type's version (over all its resources) last sent or reached
    sent_nonce: str = ""
    sent_at: float = 0.0
    acked_version: str = ""
    nack: str | None = None  # the client's error_detail for the last NACK, until a later ACK
    resources_sent: int = 0
    awaiting: bool = False  # the last response sent is not answered yet

    def mark_sent(self, version: str, nonce: str, resources: int) -> None:
        """A response of this type went out: its version, nonce, and how many resources."""
        self.sent_version = version
        self.sent_nonce = nonce
        self.sent_at = time.time()
        self.resources_sent += resources
        self.awaiting = True

    @property
    def status(self) -> str:
        """Istio's proxy-status words: SYNCED, NOT SENT, STALE."""
        if not self.sent_nonce:
            return "NOT SENT"
        if self.nack is None and self.acked_version == self.sent_version:
            return "SYNCED"
        return "STALE"


def receive(subscription: Subscription, request: discovery_pb2.DiscoveryRequest) -> Received:
    """Bring `subscription` up to date with one request and say what the request was.

    A request carrying the last nonce sent answers that response: an ACK, or a NACK when it
    has `error_detail`. Any other nonce answers a response already superseded. A request with
    no nonce (the first on a stream, also after a reconnect with the client's old version)
    or naming other resources asks to be answered, whatever version it says it has.
    """
    names = frozenset(n for n in request.resource_names if n != WILDCARD)
    if request.response_nonce:
        if request.response_nonce != subscription.sent_nonce:
            return Received.SUPERSEDED
        subscription.awaiting = False
        if request.HasField("error_detail"):
            subscription.nack = request.error_detail.message
            subscription.names = names
            return Received.NACK
        subscription.acked_version = subscription.sent_version
        subscription.nack = None
        if names == subscription.names:
            return Received.ACK
    subscription.names = names
    subscription.requested = True
    return Received.ASK


def response(
    subscription: Subscription,
    type_url: str,
    version: str,
    resources: Iterable[any_pb2.Any],
    nonce: str,
    version_info: str | None = None,
) -> discovery_pb2.DiscoveryResponse:
    """The response carrying `resources` at `version`, recorded as the last one sent. The
    client is told `version_info` if given (what it holds may be more than that version)."""
    packed = list(resources)
    subscription.mark_sent(version, nonce, len(packed))
    return discovery_pb2.DiscoveryResponse(
        version_info=version_info or version, type_url=type_url, nonce=nonce, resources=packed
    )
