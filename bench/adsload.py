"""ADS load: M sidecars' ADS streams to one control plane, from one process.

Each stream behaves as Envoy does: its first request carries a node with the metadata our
sidecars send, it subscribes to CDS (wildcard), then to EDS for the EDS clusters it got, then
to LDS (wildcard), then to RDS for the route names in its listeners, and it ACKs every
response. It records, per stream and type, when each version arrived and when it was ACKed.
Payloads are parsed only as far as names need.

`--protocol delta` (the default, as every Envoy `weft run` starts speaks it) opens
`DeltaAggregatedResources`: CDS and LDS are wildcard (a first request naming nothing), EDS
and RDS are subscribed and unsubscribed by name as clusters and listeners come and go, each
response's `resources` and `removed_resources` are applied to what the stream holds, every
response is ACKed with its nonce (never NACKed: an unreadable payload is counted instead), and
a type's version is the response's `system_version_info`. A reconnect declares what it holds
(`initial_resource_versions`). `--protocol sotw` opens `StreamAggregatedResources`, ACKs
with version and nonce, and NACKs a payload it cannot read.

Control is line-oriented JSON: one command per line on stdin, one answer per line on stdout
(logs go to stderr). Times are `time.monotonic()` seconds, one clock for every process here.

    {"id": 1, "op": "status"}
    {"id": 2, "op": "wait_synced", "timeout": 60}    every stream has ACKed CDS, EDS, LDS, RDS
    {"id": 3, "op": "arm", "type": "RDS"}             remember each stream's current RDS version
    {"id": 4, "op": "wait", "watch": 1, "timeout": 30}  until every stream ACKed another one
    {"id": 5, "op": "quit"}

    python -m bench.adsload --xds 127.0.0.1:15010 --proxies 100 [--protocol delta|sotw]

This module is the process and its identities; the streams are in `bench.ads_fleet` (shared
bookkeeping), `bench.ads_delta` and `bench.ads_sotw`, payload names in `bench.ads_names`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from typing import Any

from bench.ads_delta import DeltaFleet
from bench.ads_fleet import PROTOCOLS as PROTOCOLS  # re-exported for bench.controlplane
from bench.ads_fleet import Fleet
from bench.ads_fleet import Protocol as Protocol
from bench.ads_sotw import SotwFleet
from weft.agent.bootstrap import SidecarIdentity
from weft.snapshot.proxy import InboundPort

FLEETS: dict[Protocol, type[Fleet]] = {"delta": DeltaFleet, "sotw": SotwFleet}
SERVICE_PORT = 8080
# Ports named in each proxy's metadata (nothing listens on them): distinct per proxy, as
# every sidecar on one host has its own, within range for up to PORT_SPAN proxies.
PORT_SPAN = 10_000
PROXY_PORT_BASE, INBOUND_PORT_BASE, APP_PORT_BASE = 30_000, 40_000, 50_000


def workload_name(index: int, prefix: str = "client", replicas: int = 1) -> str:
    """The workload proxy `index` is a replica of; Sidecars select it by label app=<this>."""
    return f"{prefix}-{index // replicas:05d}"


def identity(index: int, namespace: str, prefix: str, replicas: int) -> SidecarIdentity:
    """Proxy `index` as `weft run` would describe it: labels, ports, certificates over SDS."""
    workload = workload_name(index, prefix, replicas)
    return SidecarIdentity(
        workload=f"{workload}-{index % replicas}" if replicas > 1 else workload,
        namespace=namespace,
        service=workload,
        labels={"app": workload, "version": "v1"},
        service_account=workload,
        proxy_port=PROXY_PORT_BASE + index,
        inbound=(InboundPort(SERVICE_PORT, INBOUND_PORT_BASE + index, APP_PORT_BASE + index),),
        sds_socket="unused",  # only its presence matters: WEFT_SDS "true"
    )


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _serve_commands(fleet: Fleet, max_seconds: float) -> None:
    """Answer commands from stdin until `quit`, end of input, or `max_seconds`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    deadline = time.monotonic() + max_seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = await asyncio.wait_for(reader.readline(), left)
        except TimeoutError:
            break
        if not line:
            break
        try:
            command = json.loads(line)
            op = command["op"]
            timeout = min(float(command.get("timeout", 30)), max(0.0, left))
            answer: dict[str, Any]
            if op == "quit":
                _emit({"id": command.get("id"), "ok": True})
                return
            if op == "status":
                answer = fleet.status()
            elif op == "wait_synced":
                answer = await fleet.wait_synced(timeout)
            elif op == "arm":
                answer = {"watch": fleet.arm(str(command["type"]))}
            elif op == "wait":
                answer = await fleet.wait(int(command["watch"]), timeout)
            else:
                answer = {"error": f"unknown op {op!r}"}
        except (ValueError, KeyError, TypeError) as e:
            answer = {"error": f"bad command {line[:200]!r}: {e}"}
        _emit({"id": command.get("id") if isinstance(command, dict) else None, **answer})


async def main_async(args: argparse.Namespace) -> int:
    identities = [
        identity(i, args.namespace, args.prefix, args.replicas) for i in range(args.proxies)
    ]
    fleet = FLEETS[args.protocol](args.xds, identities)
    _emit(
        {"event": "started", "pid": os.getpid(), "proxies": args.proxies, "protocol": args.protocol}
    )
    streams = asyncio.create_task(fleet.run())
    try:
        await _serve_commands(fleet, args.max_seconds)
    finally:
        streams.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await streams
        await fleet.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.adsload", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--xds", required=True, help="the control plane's ADS address, HOST:PORT")
    parser.add_argument("--proxies", type=int, required=True, help="streams to open (M)")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="delta",
        help="incremental ADS, as our sidecars speak it (default), or state of the world",
    )
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--prefix", default="client", help="workload names: PREFIX-00000, ...")
    parser.add_argument(
        "--replicas", type=int, default=1, help="proxies per workload (alike labels)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=1800, help="exit after this long whatever happens"
    )
    args = parser.parse_args(argv)
    if not 0 < args.proxies <= PORT_SPAN:
        parser.error(f"--proxies must be 1-{PORT_SPAN}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
