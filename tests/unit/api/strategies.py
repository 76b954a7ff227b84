"""Hypothesis strategies for Istio objects, made by walking the API models: every field of every
kind, as the dict a user's YAML would load into.

Values are mostly what users write (the hosts, subsets and ports of the Bookinfo mesh the tests
generate for, durations, header names, regexes) and sometimes anything at all (random text,
numbers out of range), so that objects validation accepts reach every corner of generation and
objects it should refuse are tried too. Pools are chosen by field name; a field with no pool
gets values for its type.
"""

from __future__ import annotations

import datetime
import tempfile
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from weft.api import KINDS, IstioObject
from weft.api.base import _duration, _percentage, _port, _positive_duration

S = st.SearchStrategy[Any]

HOSTS = [
    "reviews",
    "ratings",
    "details",
    "productpage",
    "reviews.default.svc.cluster.local",
    "ratings.default.svc.cluster.local",
    "reviews.shop.svc.cluster.local",
    "nosuch",
    "*.default.svc.cluster.local",
    "api.example.com",
    "*.example.com",
    "10.0.0.1",
]
NAMESPACED_HOSTS = ["./*", "*/*", "*/reviews", "default/*", "istio-system/*", "~/*", "shop/api"]
NAMESPACES = ["default", "shop", "istio-system"]
SUBSETS = ["v1", "v2", "v3", "nosuch"]
PORTS = [9080, 80, 443, 8080]
LABELS = [{"version": "v1"}, {"version": "v2"}, {"app": "productpage"}, {"app": "reviews"}, {}]
HEADER_NAMES = [
    "x-user",
    "end-user",
    "content-type",
    "x-envoy-original-path",
    ":authority",
    ":path",
    "host",
    "Host",
    "X-Upper",
    "bad header",
    "",
]
PATHS = ["/", "/reviews", "/reviews/", "/a/b", "", "no-slash", "/a?b=c", "/%41"]
REGEXES = [".*", "/reviews/[0-9]+", "^/a(b|c)$", "*", "(", "x{1001}", "(?i)/x", "\\d+"]
DURATIONS = ["1s", "0.5s", "100ms", "1m", "1h", "2.5s", "1h30m"]
ODD_DURATIONS = ["0s", "1us", "10ns", "99999999h"]
STATUSES = [200, 204, 301, 302, 307, 404, 418, 500, 503, 599]
GRPC_STATUSES = ["UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "OK", "unavailable", "14", "X"]
PLAIN_WORDS = ["a", "x", "v1", "reviews", "foo-bar"]
WORDS = [*PLAIN_WORDS, "*", "Foo", "a.b", "a b", "é", "\n", ""]
CIDRS = ["10.0.0.0/8", "10.0.0.1", "127.0.0.1/32", "::1", "2001:db8::/32", "not-an-ip"]
ADDRESSES = ["127.0.0.1", "10.1.2.3", "::1", "example.com", "unix:///tmp/w.sock", "bad address"]
JWKS = '{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}'
CONDITION_KEYS = [
    "request.headers[x-user]",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[groups]",
    "request.auth.claims[a][b]",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.network.mysql_proxy[db.table]",
    "request.headers[]",
    "nonsense",
]


# PEM files on this machine for the TLS path fields (written by write_tls_files).
TLS_DIR = Path(tempfile.gettempdir()) / "weft-api-strategies"
CERT_FILE, KEY_FILE, CRL_FILE = (str(TLS_DIR / n) for n in ("cert.pem", "key.pem", "crl.pem"))


def write_tls_files() -> None:
    """A self-signed certificate, its key and an empty revocation list, where the TLS path
    pools say (Envoy reads them when it checks a config)."""
    TLS_DIR.mkdir(exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weft test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    Path(CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(CRL_FILE).write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    Path(KEY_FILE).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def text(junk: bool) -> S:
    """A string: a plain word, or with `junk` also odd words and arbitrary text (control
    characters too)."""
    plain = st.sampled_from(PLAIN_WORDS)
    if not junk:
        return plain
    return st.one_of(plain, plain, st.sampled_from(WORDS), st.text(max_size=8))


def _pool(junk: bool, values: list[Any]) -> S:
    """The pool; with `junk`, now and then anything of the same type too."""
    sample = st.sampled_from(values)
    first = values[0]
    if junk and isinstance(first, str):
        return st.one_of(*[sample] * 5, text(junk))
    if junk and isinstance(first, int):
        edges = st.sampled_from([-1, 0, 2**32, 2**63])
        return st.one_of(*[sample] * 5, st.integers(-1, 70000), edges)
    return sample


def _list(junk: bool, element: S, max_size: int = 2) -> S:
    """Mostly not empty: many lists must have an entry for their object to be valid."""
    return st.one_of(*[st.lists(element, min_size=1, max_size=max_size)] * 3, st.just([]))


def _dict_of(junk: bool, keys: S, values: S) -> S:
    return st.dictionaries(keys, values, max_size=2)


# Pools by field name, for any model; `(model, field)` entries take precedence.
_BY_FIELD: dict[str, Callable[[bool], S]] = {
    "host": lambda j: _pool(j, HOSTS),
    "target_host": lambda j: _pool(j, HOSTS),
    "hosts": lambda j: _list(j, _pool(j, HOSTS)),
    "sni_hosts": lambda j: _list(j, _pool(j, HOSTS)),
    "subset": lambda j: _pool(j, SUBSETS),
    "namespace": lambda j: _pool(j, NAMESPACES),
    "source_namespace": lambda j: _pool(j, NAMESPACES),
    "namespaces": lambda j: _list(j, _pool(j, NAMESPACES)),
    "not_namespaces": lambda j: _list(j, _pool(j, NAMESPACES)),
    "labels": lambda j: _pool(j, LABELS),
    "source_labels": lambda j: _pool(j, LABELS),
    "match_labels": lambda j: _pool(j, LABELS),
    "number": lambda j: _pool(j, PORTS),
    "port": lambda j: _pool(j, PORTS),
    "target_port": lambda j: _pool(j, PORTS),
    "export_to": lambda j: _list(j, _pool(j, [".", "*", "~", "default", "shop"])),
    "gateways": lambda j: _list(
        j, _pool(j, ["mesh", "ingress", "shop/gw", "istio-system/gateway"])
    ),
    "regex": lambda j: _pool(j, REGEXES),
    "exact": lambda j: _pool(j, PATHS),
    "prefix": lambda j: _pool(j, PATHS),
    "uri": lambda j: _pool(j, PATHS),
    "authority": lambda j: _pool(j, ["details", "details:9080", "example.com", "bad host"]),
    "scheme": lambda j: _pool(j, ["http", "https", "HTTPS", "ftp", ""]),
    "weight": lambda j: _pool(j, [0, 100, 50, 20, 80, 1]),
    "status": lambda j: _pool(j, STATUSES),
    "http_status": lambda j: _pool(j, STATUSES),
    "redirect_code": lambda j: _pool(j, [301, 302, 303, 307, 308, 200]),
    "grpc_status": lambda j: _pool(j, GRPC_STATUSES),
    "http2_error": lambda j: _pool(j, ["REFUSED_STREAM"]),
    "percent": lambda j: _pool(j, [0, 10, 50, 100]),
    "mirror_percent": lambda j: _pool(j, [0, 10, 50, 100]),
    "retry_on": lambda j: _pool(j, ["5xx", "gateway-error,connect-failure", "503", "bogus", ""]),
    "attempts": lambda j: _pool(j, [0, 1, 3]),
    "string": lambda j: _pool(j, ["closed", "", '{"error": 1}', "x" * 5000]),
    "bytes": lambda j: _pool(j, ["aGVsbG8=", "AAH_c3RhcnM", "not base64!", ""]),
    "http_header_name": lambda j: _pool(j, HEADER_NAMES),
    "http_query_parameter_name": lambda j: _pool(j, ["user", "", "a b"]),
    "remove": lambda j: _list(j, _pool(j, HEADER_NAMES)),
    "allow_headers": lambda j: _list(j, _pool(j, HEADER_NAMES)),
    "expose_headers": lambda j: _list(j, _pool(j, HEADER_NAMES)),
    "allow_methods": lambda j: _list(j, _pool(j, ["GET", "POST", "*", "get"])),
    "allow_origin": lambda j: _list(j, _pool(j, ["https://example.com", "*"])),
    "addresses": lambda j: _list(j, _pool(j, CIDRS)),
    "destination_subnets": lambda j: _list(j, _pool(j, CIDRS)),
    "ip_blocks": lambda j: _list(j, _pool(j, CIDRS)),
    "not_ip_blocks": lambda j: _list(j, _pool(j, CIDRS)),
    "remote_ip_blocks": lambda j: _list(j, _pool(j, CIDRS)),
    "not_remote_ip_blocks": lambda j: _list(j, _pool(j, CIDRS)),
    "address": lambda j: _pool(j, ADDRESSES),
    "bind": lambda j: _pool(j, ["127.0.0.1", "0.0.0.0", "unix:///tmp/b.sock", "bad"]),
    "default_endpoint": lambda j: _pool(j, ["127.0.0.1:8080", "unix:///tmp/s.sock", "bad"]),
    "service_account": lambda j: _pool(j, ["bookinfo-reviews", "default"]),
    "locality": lambda j: _pool(j, ["us/east", "region/zone/subzone", "a//b"]),
    "network": lambda j: _pool(j, ["net1"]),
    "principals": lambda j: _list(j, _pool(j, ["cluster.local/ns/default/sa/x", "*", "*/sa/x"])),
    "not_principals": lambda j: _list(j, _pool(j, ["cluster.local/ns/default/sa/x", "*"])),
    "request_principals": lambda j: _list(j, _pool(j, ["issuer.example/sub", "*"])),
    "not_request_principals": lambda j: _list(j, _pool(j, ["issuer.example/sub", "*"])),
    "methods": lambda j: _list(j, _pool(j, ["GET", "POST", "*", ""])),
    "not_methods": lambda j: _list(j, _pool(j, ["GET", "POST"])),
    "paths": lambda j: _list(j, _pool(j, ["/a", "/a/*", "*", "/{*}/b", "/{**}", "/a{"])),
    "not_paths": lambda j: _list(j, _pool(j, ["/a", "*/b"])),
    "ports": lambda j: _list(j, _pool(j, ["9080", "80", "x", "0"])),
    "not_ports": lambda j: _list(j, _pool(j, ["9080", "x"])),
    "key": lambda j: _pool(j, CONDITION_KEYS),
    "values": lambda j: _list(
        j, _pool(j, ["v1", "*", "10.0.0.0/8", "cluster.local/ns/default/sa/x"])
    ),
    "issuer": lambda j: _pool(j, ["issuer.example", "https://issuer.example", ""]),
    "jwks": lambda j: _pool(j, [JWKS, "not json", '{"keys": []}']),
    "jwks_uri": lambda j: _pool(j, ["https://issuer.example/jwks", "not a uri"]),
    "audiences": lambda j: _list(j, _pool(j, ["aud", ""])),
    "from_params": lambda j: _list(j, _pool(j, ["token", ""])),
    "from_cookies": lambda j: _list(j, _pool(j, ["session", ""])),
    "output_payload_to_header": lambda j: _pool(j, HEADER_NAMES),
    "claim": lambda j: _pool(j, ["sub", "a.b", ""]),
    "client_certificate": lambda j: _pool(j, [CERT_FILE, "cert.pem"]),
    "server_certificate": lambda j: _pool(j, [CERT_FILE, "cert.pem"]),
    "private_key": lambda j: _pool(j, [KEY_FILE, "key.pem"]),
    "ca_certificates": lambda j: _pool(j, [CERT_FILE, "ca.pem"]),
    "ca_crl": lambda j: _pool(j, [CRL_FILE, "crl.pem"]),
    "credential_name": lambda j: _pool(j, ["reviews-cert", "kubernetes://x"]),
    "sni": lambda j: _pool(j, ["reviews.example", ""]),
    "subject_alt_names": lambda j: _list(
        j, _pool(j, ["spiffe://cluster.local/ns/a/sa/b", "x.example"])
    ),
    "cipher_suites": lambda j: _list(j, _pool(j, ["ECDHE-RSA-AES128-GCM-SHA256", "BOGUS"])),
    "failover_priority": lambda j: _list(j, _pool(j, ["topology.kubernetes.io/region"])),
    "stat_prefix": lambda j: _pool(j, ["my_route", "bad prefix"]),
    "command": lambda j: _list(j, _pool(j, ["/bin/true"])),
    "group": lambda j: _pool(j, ["", "gateway.networking.k8s.io"]),
    "path": lambda j: _pool(j, ["/", "/healthz", ""]),
}
_BY_MODEL_FIELD: dict[tuple[str, str], Callable[[bool], S]] = {
    ("GatewaySpec", "selector"): lambda j: _pool(j, LABELS),
    ("ObjectMeta", "name"): lambda j: st.sampled_from(["reviews", "ratings", "reviews-routes"]),
    ("ObjectMeta", "namespace"): lambda j: st.sampled_from(NAMESPACES),
    ("ObjectMeta", "labels"): lambda j: st.just({}),
    ("ObjectMeta", "annotations"): lambda j: st.just({}),
    ("Delegate", "name"): lambda j: _pool(j, ["reviews-routes", "ratings", "nosuch"]),
    ("Subset", "name"): lambda j: _pool(j, ["v1", "v2", "v3"]),
    ("Subset", "labels"): lambda j: _pool(j, [{"version": "v1"}, {"version": "v2"}, {}]),
    ("IstioEgressListener", "hosts"): lambda j: _list(j, _pool(j, NAMESPACED_HOSTS)),
    ("Server", "hosts"): lambda j: _list(j, _pool(j, NAMESPACED_HOSTS)),
    ("Operation", "hosts"): lambda j: _list(j, _pool(j, ["reviews", "*.example.com", "a:80"])),
    ("Operation", "not_hosts"): lambda j: _list(j, _pool(j, ["reviews"])),
    ("PolicyTargetReference", "kind"): lambda j: _pool(j, ["Gateway", "Service"]),
    ("ExtensionProviderRef", "name"): lambda j: _pool(j, ["ext-authz", "nosuch"]),
    ("PeerAuthenticationSpec", "port_level_mtls"): lambda j: _dict_of(
        j, _pool(j, PORTS), _model(_models()["PeerAuthenticationMutualTLS"], j)
    ),
    ("WorkloadEntrySpec", "ports"): lambda j: _dict_of(
        j, _pool(j, ["http", "tcp", "http-web"]), _pool(j, PORTS)
    ),
}


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}

    def walk(cls: type[BaseModel]) -> None:
        if cls.__name__ in found:
            return
        found[cls.__name__] = cls
        for info in cls.model_fields.values():
            for inner in _inner_models(info.annotation):
                walk(inner)

    for kind in KINDS.values():
        walk(kind)
    return found


def _inner_models(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in _inner_models(arg)]


def _validators(metadata: list[Any]) -> set[object]:
    return {m.func for m in metadata if isinstance(m, BeforeValidator | AfterValidator)}


def _of_type(tp: Any, metadata: list[Any], j: bool) -> S:
    """Values for a type: the walk's fallback when no pool names the field."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(tp)
        return _of_type(base, [*metadata, *extra], j)
    funcs = _validators(metadata)
    if _duration in funcs or _positive_duration in funcs:
        return _pool(j, DURATIONS + ODD_DURATIONS if j else DURATIONS)
    if _port in funcs:
        return _pool(j, PORTS)
    if _percentage in funcs:
        edges = [0.0, 100.0, 0.0001, -1.0, 101.0] if j else [0.0, 100.0, 0.0001]
        return st.one_of(st.floats(0, 100), st.sampled_from(edges))
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return st.one_of([_of_type(a, metadata, j) for a in options])
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin is list:
        (element,) = typing.get_args(tp)
        return _list(j, _of_type(element, [], j))
    if origin is dict:
        key, value = typing.get_args(tp)
        keys = _pool(j, HEADER_NAMES) if key is str else _of_type(key, [], j)
        return _dict_of(j, keys, _of_type(value, [], j))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _model(tp, j)
    if tp is bool:
        return st.booleans()
    if tp is int:
        small = st.sampled_from([0, 1, 2, 10, 100])
        edges = st.sampled_from([-1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63])
        return st.one_of(small, edges, st.integers(-(2**31), 2**32)) if j else small
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return text(j)
    raise TypeError(f"no strategy for {tp!r}")


def _field(model: type[BaseModel], name: str, info: FieldInfo, j: bool) -> S:
    named = _BY_MODEL_FIELD.get((model.__name__, name))
    if named is None and not _inner_models(info.annotation):
        named = _BY_FIELD.get(name)  # pools are of plain values, never for a message field
    if named is not None:
        return named(j)
    return _of_type(info.annotation, list(info.metadata), j)


# Fields of which a valid object sets exactly one (a oneof in Istio's protos): one is picked,
# and now and then a second one too, or none.
_ONE_OF: dict[str, tuple[str, ...]] = {
    "HTTPRoute": ("route", "redirect", "direct_response", "delegate"),
    "StringMatch": ("exact", "prefix", "regex"),
    "ConsistentHashLB": (
        "http_header_name",
        "http_cookie",
        "use_source_ip",
        "http_query_parameter_name",
    ),
    "LoadBalancerSettings": ("simple", "consistent_hash"),
    "Abort": ("http_status", "grpc_status", "http2_error"),
    "Delay": ("fixed_delay", "exponential_delay"),
    "HTTPBody": ("string", "bytes"),
    "ReadinessProbe": ("http_get", "tcp_socket", "exec", "grpc"),
    "AuthorizationPolicySpec": ("selector", "target_ref", "target_refs"),
    "RequestAuthenticationSpec": ("selector", "target_ref", "target_refs"),
    "JWTRule": ("jwks", "jwks_uri"),
}

# Optional fields that a valid object sets: present, and with odd values seven times in eight.
_USUAL: dict[str, tuple[str, ...]] = {
    "VirtualServiceSpec": ("hosts", "http"),
    "ServiceEntrySpec": ("hosts", "ports"),
    "GatewaySpec": ("servers",),
    "Server": ("port", "hosts"),
    "Port": ("number", "protocol"),
    "WorkloadEntrySpec": ("address",),
    "IstioEgressListener": ("hosts",),
    "IstioIngressListener": ("port",),
    "TLSRoute": ("match", "route"),
    "TCPRoute": ("route",),
    "TLSMatchAttributes": ("sni_hosts",),
    "JWTRule": ("jwks",),
    "HTTPFaultInjection": ("abort",),
}
# Fields of which an object sets at most one: without odd values, only the first may come.
_AT_MOST_ONE: dict[str, tuple[str, ...]] = {
    "HTTPRoute": ("mirrors", "mirror"),
    "ServiceEntrySpec": ("endpoints", "workload_selector"),
    "AuthorizationPolicySpec": ("rules", "provider"),
    "HTTPRewrite": ("uri", "uri_regex_rewrite"),
}
_ABSENT = object()

_CACHE: dict[tuple[type[BaseModel], bool], S] = {}


def _model(model: type[BaseModel], junk: bool) -> S:
    """A dict for `model` by its wire (camelCase) names: required fields always, the others
    now and then."""
    found = _CACHE.get((model, junk))
    if found is None:
        found = _CACHE[model, junk] = _build(model, junk)
    return found


def _build(model: type[BaseModel], j: bool) -> S:
    envelope = ("api_version", "kind") if "metadata" in model.model_fields else ()
    group = _ONE_OF.get(model.__name__, ())
    usual = _USUAL.get(model.__name__, ())
    required: dict[str, S] = {}
    optional: dict[str, S] = {}
    exclusive: dict[str, S] = {}
    for name, info in model.model_fields.items():
        if name in envelope:
            continue
        wire = info.alias or name
        if name in group:
            exclusive[wire] = _field(model, name, info, j)
        elif info.is_required():
            required[wire] = _field(model, name, info, j)
        elif name in usual and j:
            required[wire] = st.one_of(*[_field(model, name, info, j)] * 7, st.just(_ABSENT))
        elif name in usual:
            required[wire] = _field(model, name, info, j).filter(lambda v: v != [])
        elif not j and name in _AT_MOST_ONE.get(model.__name__, ()):
            continue  # the first of the group is set below, now and then
        else:
            optional[wire] = _field(model, name, info, j)
    if not j and model.__name__ in _AT_MOST_ONE:
        first = _AT_MOST_ONE[model.__name__][0]
        info = model.model_fields[first]
        optional[info.alias or first] = _field(model, first, info, j)
    base = st.fixed_dictionaries(required, optional=optional).map(
        lambda d: {k: v for k, v in d.items() if v is not _ABSENT}
    )
    if not exclusive:
        return base
    one = st.sampled_from(sorted(exclusive)).flatmap(
        lambda key: exclusive[key].map(lambda value: {key: value})
    )
    picks = one
    if j:
        two = st.tuples(one, one).map(lambda p: {**p[0], **p[1]})
        picks = st.one_of(one, one, st.just({}), two)
    return st.tuples(base, picks).map(lambda parts: {**parts[0], **parts[1]})


def istio_object(kind: type[IstioObject], junk: bool = False) -> S:
    """A document of one kind, as loaded from YAML; with `junk`, odd values come too."""
    return st.fixed_dictionaries(
        {
            "apiVersion": st.just(kind.model_fields["api_version"].default),
            "kind": st.just(kind.__name__),
            "metadata": _model(_models()["ObjectMeta"], junk),
            "spec": _field(kind, "spec", kind.model_fields["spec"], junk),
        }
    )


def istio_objects(weights: dict[str, int] | None = None) -> S:
    """A document of any kind, odd values in one of four; `weights` (by kind name) makes some
    kinds come up more often."""
    weights = weights or {}
    choices = [
        istio_object(kind, junk)
        for name, kind in KINDS.items()
        for junk in (False, False, False, True)
        for _ in range(weights.get(name, 1))
    ]
    return st.one_of(choices)
