"""The `weft` command: the mesh's istioctl, plus `control-plane` and `run` for local mode."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from weft import __version__
from weft.errors import ConfigError, WeftError

if TYPE_CHECKING:
    from weft.controlplane.client import AdminClient

T = TypeVar("T")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _admin(call: Callable[[AdminClient], Awaitable[T]]) -> T:
    """One call to the control plane's admin API; its errors end the command with a message."""
    from weft.controlplane.client import AdminClient

    async def go() -> T:
        async with AdminClient() as admin:
            return await call(admin)

    try:
        return asyncio.run(go())
    except WeftError as e:
        _fail(str(e))
        raise  # unreachable


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="weft")
def cli() -> None:
    """Weft: a service mesh that speaks Istio's APIs, on one machine or on Kubernetes."""


@cli.command("version")
def version() -> None:
    """Print Weft's version and the Envoy it runs."""
    from weft.agent.envoy import envoy_binary

    click.echo(f"weft {__version__}")
    try:
        click.echo(f"envoy {envoy_binary()}")
    except WeftError as e:
        click.echo(f"envoy: {e}")


@cli.command("control-plane")
@click.option(
    "--config-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of Istio YAML, watched for changes.",
)
@click.option("--xds-port", default=15010, show_default=True, type=int)
@click.option("--admin-port", default=15014, show_default=True, type=int)
@click.option("--ca-port", default=15012, show_default=True, type=int, help="CA (TLS) port.")
@click.option(
    "--ca-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Plugged-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem.",
)
@click.option(
    "--max-cert-ttl",
    default="2160h",
    show_default=True,
    help="Longest workload certificate the CA issues (2160h is 90 days).",
)
@click.option(
    "--mesh-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Istio mesh config YAML (trustDomain, rootNamespace, extensionProviders, ...).",
)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where registrations are kept across restarts [CONFIG_DIR/.weft-state].",
)
@click.option(
    "--registry-ttl",
    default=15.0,
    show_default=True,
    help="Seconds without a heartbeat before a workload is removed.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def control_plane(
    config_dir: Path, xds_port: int, admin_port: int, ca_port: int, ca_dir: Path | None,
    max_cert_ttl: str, mesh_config: Path | None, address: str, state_dir: Path | None,
    registry_ttl: float, log_level: str,
) -> None:  # fmt: skip
    """Run the control plane (Istio's istiod): config, discovery, xDS, CA."""
    from weft.api import MeshConfig, load_mesh_config
    from weft.api.durations import parse_duration
    from weft.controlplane.app import ControlPlane, ControlPlaneOptions

    _setup_logging(log_level)
    try:
        mesh = load_mesh_config(mesh_config) if mesh_config else MeshConfig()
        max_ttl = parse_duration(max_cert_ttl)
    except (ConfigError, ValueError) as e:
        _fail(str(e))
    config_dir.mkdir(parents=True, exist_ok=True)
    options = ControlPlaneOptions(
        config_dir=config_dir,
        state_dir=state_dir or config_dir / ".weft-state",
        xds_address=address,
        xds_port=xds_port,
        admin_port=admin_port,
        ca_port=ca_port,
        ca_dir=ca_dir,
        max_cert_ttl=max_ttl,
        mesh=mesh,
        registry_ttl=registry_ttl,
    )
    try:
        asyncio.run(ControlPlane(options).run())
    except KeyboardInterrupt:
        pass
    except OSError as e:
        _fail(
            f"{e} (is another control plane running? pick other ports with "
            "--xds-port/--admin-port/--ca-port)"
        )
    except WeftError as e:
        _fail(str(e))


@cli.command("run", context_settings={"ignore_unknown_options": False})
@click.option("--service", required=True, help="Service name, e.g. reviews.")
@click.option("--namespace", default="default", show_default=True)
@click.option("--version", "version_", default="", help="Version label, e.g. v1.")
@click.option("--service-account", default="", help="Identity [the service name].")
@click.option("--label", "labels", multiple=True, help="Extra label K=V (repeatable).")
@click.option("--port", "app_port", required=True, type=int, help="Port the app listens on.")
@click.option("--service-port", type=int, help="Port clients use [--port].")
@click.option("--inbound-port", type=int, help="Sidecar port the mesh reaches [free port].")
@click.option("--proxy-port", type=int, help="Sidecar HTTP_PROXY port [free port].")
@click.option("--admin-port", type=int, help="Envoy admin port [free port].")
@click.option(
    "--protocol",
    default="HTTP",
    show_default=True,
    type=click.Choice(["HTTP", "HTTP2", "GRPC", "TCP"], case_sensitive=False),
)
@click.option("--probe-path", help="HTTP readiness path (default: TCP connect to --port).")
@click.option("--group", help="WorkloadGroup to register from (its labels, identity, probe).")
@click.option(
    "--cert-ttl",
    help="Workload certificate lifetime to ask for, e.g. 24h, 30m (default: the CA's, 24h).",
)
@click.option(
    "--key-type",
    type=click.Choice(["EC", "RSA"], case_sensitive=False),
    default="EC",
    show_default=True,
    help="Workload key: EC P-256 or RSA 2048, made here and never sent anywhere.",
)
@click.option(
    "--mtls/--no-mtls",
    default=True,
    show_default=True,
    help="Get a workload certificate and take part in mesh mTLS.",
)
@click.option("--drain-seconds", default=1.0, show_default=True)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    service: str, namespace: str, version_: str, service_account: str, labels: tuple[str, ...],
    app_port: int, service_port: int | None, inbound_port: int | None, proxy_port: int | None,
    admin_port: int | None, protocol: str, probe_path: str | None, group: str | None,
    cert_ttl: str | None, key_type: str, mtls: bool, drain_seconds: float,
    log_level: str, command: tuple[str, ...],
) -> None:  # fmt: skip
    """Run COMMAND as a mesh workload with its own Envoy sidecar.

    COMMAND gets PORT and HTTP_PROXY in its environment. Example:

      weft run --service reviews --version v2 --port 9082 --service-port 9080 -- python app.py
    """
    from weft.agent.run import RunOptions, run_workload
    from weft.api.durations import parse_duration
    from weft.api.protocol import Protocol
    from weft.controlplane.address import admin_address, xds_address

    _setup_logging(log_level)
    parsed: dict[str, str] = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--label {item!r} is not K=V")
        parsed[key] = value
    try:
        xds, admin = xds_address(), admin_address()
        ttl = parse_duration(cert_ttl) if cert_ttl else None
    except (WeftError, ValueError) as e:
        _fail(str(e))
    code = run_workload(
        RunOptions(
            service=service,
            app_port=app_port,
            command=command,
            namespace=namespace,
            version=version_,
            service_account=service_account,
            labels=parsed,
            service_port=service_port,
            inbound_port=inbound_port,
            proxy_port=proxy_port,
            admin_port=admin_port,
            protocol=Protocol.parse(protocol),
            probe_path=probe_path,
            xds=xds,
            admin=admin,
            drain_seconds=drain_seconds,
            group=group,
            mtls=mtls,
            cert_ttl=ttl,
            key_type="RSA" if key_type.upper() == "RSA" else "EC",
        )
    )
    sys.exit(code)


def _read(file: str) -> tuple[str, str]:
    if file == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(file).read_text(), file
    except OSError as e:
        _fail(f"cannot read {file}: {e.strerror}")
        raise  # unreachable


def _apply(file: str, delete: bool) -> None:
    from weft.api import KINDS

    text, source = _read(file)
    result = _admin(lambda admin: admin.apply(text, source, delete=delete))
    for r in result["results"]:
        kind = f"{r['kind'].lower()}.{KINDS[r['kind']].api_group()}"
        where = "" if r["namespace"] == "default" else f" -n {r['namespace']}"
        click.echo(f"{kind}/{r['name']}{where} {r['result']}")


@cli.command("apply")
@click.option("-f", "--filename", "file", required=True, help="YAML file, or - for stdin.")
def apply(file: str) -> None:
    """Create or update Istio config in the running control plane."""
    _apply(file, delete=False)


@cli.command("delete")
@click.option("-f", "--filename", "file", required=True, help="YAML file, or - for stdin.")
def delete(file: str) -> None:
    """Delete the Istio config objects named in FILE."""
    _apply(file, delete=True)


@cli.command("validate")
@click.option("-f", "--filename", "files", required=True, multiple=True)
def validate(files: tuple[str, ...]) -> None:
    """Check Istio YAML offline, with the control plane's own validation."""
    from weft.api.loader import load_yaml

    failed = False
    for file in files:
        text, source = _read(file)
        try:
            objects = load_yaml(text, source)
        except ConfigError as e:
            click.secho(f"✗ {e}", fg="red", err=True)
            failed = True
            continue
        for o in objects:
            click.echo(f"✓ {source}: {o.kind} {o.metadata.namespace}/{o.metadata.name} is valid")
    sys.exit(1 if failed else 0)


@cli.command("proxy-status")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def proxy_status(output: str) -> None:
    """Every connected proxy and whether it has the latest config, per xDS type."""
    from rich.table import Table

    from weft.cli.console import table_console

    data = _admin(lambda admin: admin.syncz())
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "CLUSTER", "XDS", "CDS", "LDS", "EDS", "RDS"):
        table.add_column(col)
    nacks: list[str] = []
    for p in data["proxies"]:
        cells = []
        for t in ("CDS", "LDS", "EDS", "RDS"):
            info = p["types"][t]
            cells.append(info["status"])
            if info["nack"]:
                nacks.append(f"{p['id']} {t}: {info['nack']}")
        table.add_row(
            f"{p['workload']}.{p['namespace']}",
            f"{p['service']}.{p['namespace']}",
            str(p.get("protocol", "sotw")),
            *cells,
        )
    table_console().print(table)
    for nack in nacks:
        click.secho(f"NACK {nack}", fg="yellow")
    for problem in data.get("left_out", []):
        click.secho(f"LEFT OUT {problem}", fg="red")


_PROXY_CONFIG_TYPES = {"clusters": "CDS", "endpoints": "EDS", "listeners": "LDS", "routes": "RDS"}


@cli.command("proxy-config")
@click.argument("kind", type=click.Choice([*_PROXY_CONFIG_TYPES, "secret", "all"]))
@click.argument("proxy")
@click.option("-o", "--output", type=click.Choice(["short", "json"]), default="short")
def proxy_config(kind: str, proxy: str, output: str) -> None:
    """Show the config the control plane serves a proxy (clusters, listeners, routes...)."""
    from weft.cli.proxyconfig import print_config

    dump = _admin(lambda admin: admin.config_dump(proxy))
    if kind == "secret":
        from weft.cli.secrets import print_secrets

        try:
            print_secrets(dump, output)
        except WeftError as e:
            _fail(str(e))
        return
    kinds = list(_PROXY_CONFIG_TYPES) if kind == "all" else [kind]
    selected: dict[str, Any] = {k: dump[_PROXY_CONFIG_TYPES[k]] for k in kinds}
    if output == "json":
        click.echo(json.dumps(selected, indent=2))
        return
    print_config(selected)


@cli.command("workloads")
@click.option("-o", "--output", type=click.Choice(["table", "yaml"]), default="table")
def workloads(output: str) -> None:
    """Registered workloads, as the WorkloadEntries the control plane keeps for them."""
    import yaml
    from rich.table import Table

    from weft.cli.console import table_console

    entries = _admin(lambda admin: admin.workload_entries())
    if output == "yaml":
        click.echo(yaml.safe_dump_all(entries, sort_keys=False), nl=False)
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAMESPACE", "NAME", "ADDRESS", "PORTS", "LABELS", "IDENTITY", "HEALTHY", "GROUP"):
        table.add_column(col)
    for entry in entries:
        meta, spec = entry["metadata"], entry["spec"]
        table.add_row(
            meta["namespace"],
            meta["name"],
            spec["address"],
            ",".join(f"{k}:{v}" for k, v in spec["ports"].items()),
            ",".join(f"{k}={v}" for k, v in spec.get("labels", {}).items()),
            spec["serviceAccount"],
            meta["annotations"]["weft.io/healthy"],
            meta["annotations"].get("istio.io/autoRegistrationGroup", ""),
        )
    table_console().print(table)


@cli.group("ca")
def ca() -> None:
    """The mesh's certificate authority: status and root rotation."""


@ca.command("status")
def ca_status() -> None:
    """The CA's mode, trust domain, roots and rotation phase."""
    click.echo(json.dumps(_admin(lambda admin: admin.ca_status()), indent=2))


@ca.command("rotate-root")
@click.argument("step", type=click.Choice(["begin", "activate", "finish"]))
@click.option("--force", is_flag=True, help="Finish even if some workloads still hold old certs.")
def ca_rotate_root(step: str, force: bool) -> None:
    """Rotate the self-signed root with no broken connection, in three steps:

    begin (workloads trust old and new roots), activate (the new root signs; workloads renew
    at once), finish (the old root is no longer trusted).
    """
    status = _admin(lambda admin: admin.ca_rotate(step, force))
    click.echo(f"root rotation: {step} done; phase {status.get('rotation_phase')}")
    behind = status.get("workloadsOnOldRoots") or []
    if behind:
        click.echo(f"{len(behind)} workload(s) still on the old root: {', '.join(behind)}")


@cli.command("demo")
@click.option("--check", is_flag=True, help="No live view: verify each step, exit 0 if all pass.")
@click.option(
    "--requests", "per_step", default=200, show_default=True, help="Requests sent per step."
)
@click.option(
    "--keep-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Work in this directory and keep it (logs, config).",
)
def demo(check: bool, per_step: int, keep_dir: Path | None) -> None:
    """Bookinfo on this machine: a control plane, sidecars, traffic, Istio routing rules."""
    from weft.cli.demo import run_demo

    sys.exit(run_demo(check=check, per_step=per_step, keep_dir=keep_dir))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
