"""Incremental ADS streams (`DeltaAggregatedResources`), as every Envoy `weft run` starts
speaks: CDS and LDS wildcard, EDS and RDS subscribed and unsubscribed by name, each response
applied to what the stream holds and ACKed with its nonce (never NACKed: an unreadable payload
is counted instead), and a reconnect declaring what it holds."""

from __future__ import annotations

import hashlib
import sys
import time
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from bench.ads_fleet import SHORT, Fleet, TypeState
from weft.xds import types

# Envoy subscribes to these as a wildcard, to the others by name.
WILDCARD_TYPES = frozenset({types.CLUSTER, types.LISTENER})


def _digest(held: dict[str, str]) -> str:
    """A type's version from what is held, for a response without `system_version_info`."""
    text = "\n".join(f"{name} {version}" for name, version in sorted(held.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class DeltaFleet(Fleet):
    """Streams that speak incremental ADS; a type's version is the response's
    `system_version_info`."""

    protocol = "delta"

    def _open(self, stub: Any) -> Any:
        return stub.DeltaAggregatedResources(wait_for_ready=True)

    def _opening(self, index: int) -> list[Any]:
        """CDS and LDS wildcard (no names), EDS and RDS by name; each declares the resources
        it holds, so the control plane resends only what changed meanwhile."""
        state = self.states[index]
        for st in state.values():
            st.requested, st.nonce = False, ""
        requests = []
        for url in self._resubscribing(index):
            st = state[url]
            st.requested = True
            requests.append(
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=url,
                    resource_names_subscribe=list(st.names),
                    initial_resource_versions=st.held,
                )
            )
        return requests

    async def _on_response(self, index: int, call: Any, response: Any) -> None:
        """Apply a delta response to what the stream holds, ACK it, then follow it up."""
        now = time.monotonic()
        type_url = response.type_url
        state = self.states[index]
        st = state.get(type_url)
        if st is None:
            return  # a type we never asked for
        st.nonce, st.received_at = response.nonce, now
        st.responses += 1
        st.bytes += response.ByteSize()
        held, refs, names = st.held, st.refs, self.names
        wanted = None if type_url in WILDCARD_TYPES else set(st.names)
        changed = 0
        try:
            for resource in response.resources:
                name, version = sys.intern(resource.name), sys.intern(resource.version)
                if held.get(name) == version:
                    st.resent += 1
                else:
                    changed += 1
                if wanted is not None and name not in wanted:
                    st.unasked += 1
                held[name] = version
                if type_url == types.CLUSTER:
                    refs[name] = names.cluster_eds(resource.resource.value)
                elif type_url == types.LISTENER:
                    refs[name] = names.listener_routes(resource.resource.value)
        except Exception as e:  # Envoy would NACK; this load ACKs, and counts it
            self.unreadable += 1
            self.last_errors[index] = f"unreadable {SHORT[type_url]}: {type(e).__name__}: {e}"
        for name in response.removed_resources:
            # News if held, or if asked for: a subscribed name that does not exist.
            if held.pop(name, None) is not None or (wanted is not None and name in wanted):
                changed += 1
            refs.pop(name, None)
        version = response.system_version_info or _digest(held)
        if st.responses > 1 and not changed:
            st.unchanged += 1
        if st.responses > 1 and (version != st.version) != bool(changed):
            st.disagree += 1
        st.resources = len(held)
        st.version = version
        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce)
        )
        st.acked, st.acked_at = st.version, time.monotonic()
        # Of every cluster held its EDS name, of every listener its route names (no refs for
        # other types): what Envoy would then ask for.
        needed = tuple(sorted({n for found in refs.values() for n in found}))
        if type_url == types.CLUSTER:
            await self._follow(index, call, type_url, needed, ())
        else:
            await self._follow(index, call, type_url, (), needed)

    async def _ask_listeners(self, call: Any, listeners: TypeState) -> None:
        listeners.requested = True
        await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=types.LISTENER))

    async def _send_names(self, call: Any, type_url: str, st: TypeState, before: set[str]) -> None:
        """The names added and removed; what is no longer asked for is dropped."""
        subscribe = sorted(set(st.names) - before)
        unsubscribe = sorted(before - set(st.names))
        if not st.requested and not subscribe:
            return  # a first request naming nothing would be a wildcard
        for name in unsubscribe:  # Envoy drops what it no longer asks for
            st.held.pop(name, None)
        if subscribe or unsubscribe:
            st.requested = True
            await call.write(
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=type_url,
                    resource_names_subscribe=subscribe,
                    resource_names_unsubscribe=unsubscribe,
                )
            )

    def _figures(self, sts: list[TypeState]) -> dict[str, int]:
        return {
            **super()._figures(sts),
            "resent": sum(s.resent for s in sts),
            "unasked": sum(s.unasked for s in sts),
            "disagree": sum(s.disagree for s in sts),
        }
