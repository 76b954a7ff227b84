"""State-of-the-world ADS streams (`StreamAggregatedResources`): every request names the
whole subscription, ACKs carry version and nonce, and a payload we cannot read is NACKed."""

from __future__ import annotations

import time
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from bench.ads_fleet import Fleet, TypeState
from weft.xds import types


class SotwFleet(Fleet):
    """Streams that speak state of the world."""

    protocol = "sotw"

    def _open(self, stub: Any) -> Any:
        return stub.StreamAggregatedResources(wait_for_ready=True)

    def _opening(self, index: int) -> list[Any]:
        """Each type with the version it last accepted (no nonce: a new stream)."""
        state = self.states[index]
        return [
            discovery_pb2.DiscoveryRequest(
                version_info=state[url].acked, type_url=url, resource_names=list(state[url].names)
            )
            for url in self._resubscribing(index)
        ]

    async def _on_response(self, index: int, call: Any, response: Any) -> None:
        now = time.monotonic()
        type_url = response.type_url
        state = self.states[index]
        st = state.get(type_url)
        if st is None:
            return  # a type we never asked for
        if st.responses and response.version_info == st.version:
            st.unchanged += 1
        st.version, st.nonce, st.received_at = response.version_info, response.nonce, now
        st.responses += 1
        st.resources = len(response.resources)
        st.bytes += response.ByteSize()
        eds_names: tuple[str, ...] = ()
        route_names: tuple[str, ...] = ()
        error = ""
        try:
            if type_url == types.CLUSTER:
                eds_names = self.names.eds_names(response.resources)
            elif type_url == types.LISTENER:
                route_names = self.names.route_names(response.resources)
        except Exception as e:  # a payload we cannot read: NACK it, as Envoy would
            error = f"{type(e).__name__}: {e}"
        await call.write(self._answer(type_url, st, error))
        if error:
            self.nacks += 1
            return
        st.acked, st.acked_at = st.version, time.monotonic()
        await self._follow(index, call, type_url, eds_names, route_names)

    async def _ask_listeners(self, call: Any, listeners: TypeState) -> None:
        await call.write(self._answer(types.LISTENER, listeners, ""))

    async def _send_names(self, call: Any, type_url: str, st: TypeState, before: set[str]) -> None:
        """The whole subscription, with the last version and nonce."""
        if st.names:  # no names: nothing to ask for (an empty list would mean "everything")
            await call.write(self._answer(type_url, st, ""))

    @staticmethod
    def _answer(type_url: str, st: TypeState, error: str) -> Any:
        """An ACK of the last version received, or with `error` a NACK keeping the last one
        accepted."""
        request = discovery_pb2.DiscoveryRequest(
            version_info=st.acked if error else st.version,
            response_nonce=st.nonce,
            type_url=type_url,
            resource_names=list(st.names),
        )
        if error:
            request.error_detail.message = error
        return request
