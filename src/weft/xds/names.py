"""Names of generated Envoy resources, as Istio spells them where Istio has a name."""

from __future__ import annotations

HTTP_PROXY_LISTENER = "outbound_http_proxy"
HTTP_PROXY_ROUTE = "http_proxy"


def outbound_cluster(port: int, subset: str, host: str) -> str:
    return f"outbound|{port}|{subset}|{host}"


def parse_outbound_cluster(name: str) -> tuple[int, str, str] | None:
    parts = name.split("|")
    if len(parts) != 4 or parts[0] != "outbound":
        return None
    return int(parts[1]), parts[2], parts[3]


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def inbound_listener(address: str, port: int) -> str:
    return f"inbound_{address}_{port}"


def virtual_host(host: str, port: int) -> str:
    return f"{host}:{port}"
