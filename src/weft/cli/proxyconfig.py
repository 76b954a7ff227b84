"""`weft proxy-config` tables, in the spirit of istioctl's short output."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table

from weft.cli.console import table_console


def _table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> Table:
    table = Table(title=title, box=None, header_style="bold", title_justify="left")
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*row)
    return table


def _clusters(resources: list[dict[str, Any]]) -> Table:
    rows = []
    for c in resources:
        parts = c["name"].split("|")
        if len(parts) == 4:
            direction, port, subset, host = parts
        else:
            direction, port, subset, host = "", "", "", c["name"]
        rows.append((host, port, subset, direction, c.get("type", "EDS"), c.get("lbPolicy", "")))
    rows.sort(key=lambda r: (r[3] != "outbound", r[0], r[1], r[2]))
    return _table("clusters", ("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "LB"), rows)


def _listeners(resources: list[dict[str, Any]]) -> Table:
    rows = []
    for lis in resources:
        sock = lis["address"]["socketAddress"]
        filters = [
            f["name"].rsplit(".", 1)[-1] for fc in lis["filterChains"] for f in fc["filters"]
        ]
        rows.append(
            (lis["name"], f"{sock['address']}:{sock['portValue']}", lis.get("trafficDirection", ""),
             ", ".join(filters))
        )  # fmt: skip
    return _table("listeners", ("NAME", "ADDRESS", "DIRECTION", "FILTERS"), rows)


def _match(route: dict[str, Any]) -> str:
    m = route["match"]
    text = str(m.get("path") or m.get("prefix") or (m.get("safeRegex") or {}).get("regex", ""))
    for h in m.get("headers", []):
        sm = h.get("stringMatch", {})
        text += f" {h['name']}={next(iter(sm.values()), '*')}"
    return text


def _action(route: dict[str, Any]) -> str:
    if "route" in route:
        r = route["route"]
        if "cluster" in r:
            return str(r["cluster"])
        return ", ".join(
            f"{c['name']} {c.get('weight', 0)}%" for c in r["weightedClusters"]["clusters"]
        )
    if "redirect" in route:
        return "redirect"
    if "directResponse" in route:
        return f"direct {route['directResponse']['status']}"
    return "?"


def _routes(resources: list[dict[str, Any]]) -> Table:
    rows = []
    for rc in resources:
        for vh in rc.get("virtualHosts", []):
            domains = vh["domains"]
            shown = ", ".join(domains[:2]) + (
                f" +{len(domains) - 2} more" if len(domains) > 2 else ""
            )
            for r in vh.get("routes", []):
                rows.append((rc["name"], vh["name"], shown, _match(r), _action(r)))
    return _table("routes", ("ROUTE", "VIRTUAL HOST", "DOMAINS", "MATCH", "ACTION"), rows)


def _endpoints(resources: list[dict[str, Any]]) -> Table:
    rows = []
    for cla in resources:
        for locality in cla.get("endpoints", []):
            for ep in locality.get("lbEndpoints", []):
                sock = ep["endpoint"]["address"]["socketAddress"]
                rows.append(
                    (f"{sock['address']}:{sock['portValue']}", ep.get("healthStatus", "HEALTHY"),
                     cla["clusterName"])
                )  # fmt: skip
    return _table("endpoints", ("ENDPOINT", "STATUS", "CLUSTER"), rows)


_PRINTERS = {"clusters": _clusters, "listeners": _listeners, "routes": _routes,
             "endpoints": _endpoints}  # fmt: skip


def print_config(selected: dict[str, Any]) -> None:
    console = table_console()
    for kind, data in selected.items():
        console.print(_PRINTERS[kind](data["resources"]))
        console.print()
