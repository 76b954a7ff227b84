"""`weft proxy-config secret`: the certificates a sidecar's Envoy actually holds."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click
from rich.table import Table

from weft.cli.console import table_console
from weft.errors import WeftError

# Envoy's admin API is on the loopback; never route it through an HTTP_PROXY.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def envoy_certs(admin_port: int) -> list[dict[str, Any]]:
    """Envoy's /certs: every TLS context's chain and CA, deduplicated by serial."""
    try:
        with _OPENER.open(f"http://127.0.0.1:{admin_port}/certs", timeout=5) as resp:
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise WeftError(
            f"cannot read certificates from Envoy's admin port {admin_port}: {e}"
        ) from None
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for context in data.get("certificates", []):
        for kind, name in (("cert_chain", "default"), ("ca_cert", "ROOTCA")):
            for cert in context.get(kind) or []:
                seen.setdefault((name, cert.get("serial_number", "")), {"secret": name, **cert})
    return sorted(seen.values(), key=lambda c: (c["secret"] != "default", c["serial_number"]))


def _sans(cert: dict[str, Any]) -> str:
    names = [next(iter(s.values())) for s in cert.get("subject_alt_names") or []]
    return ", ".join(names) or "-"


def print_secrets(dump: dict[str, Any], output: str) -> None:
    port = dump.get("adminPort")
    if not port:
        raise WeftError(f"{dump['proxy']} did not say where its Envoy admin API is")
    certs = envoy_certs(int(port))
    if output == "json":
        click.echo(json.dumps(certs, indent=2))
        return
    if not certs:
        click.echo(f"{dump['proxy']} holds no certificate (started with --no-mtls?)")
        return
    table = Table(box=None, header_style="bold")
    for column in ("RESOURCE NAME", "TYPE", "SUBJECT ALT NAMES", "SERIAL NUMBER", "NOT BEFORE",
                   "NOT AFTER", "DAYS LEFT"):  # fmt: skip
        table.add_column(column)
    for cert in certs:
        table.add_row(
            cert["secret"],
            "Cert Chain" if cert["secret"] == "default" else "CA",
            _sans(cert),
            cert.get("serial_number", ""),
            cert.get("valid_from", ""),
            cert.get("expiration_time", ""),
            str(cert.get("days_until_expiration", "")),
        )
    table_console().print(table)
