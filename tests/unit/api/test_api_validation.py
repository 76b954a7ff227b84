"""Each semantic rule, seen the way a user sees it: the problem line for one bad field."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from weft.api import (
    Destination,
    HTTPRoute,
    HTTPRouteDestination,
    ObjectMeta,
    VirtualService,
    VirtualServiceSpec,
    load_yaml,
    validate,
)
from weft.api.regex import re2_error

Errors = Callable[[str], list[str]]


def vs(spec: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
{spec}"""


def obj(kind: str, spec: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: {kind}
metadata: {{name: thing, namespace: shop}}
spec:
{spec}"""


VS = "mesh.yaml: VirtualService shop/reviews: "


def test_weights_must_sum_to_100(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 70}
    - {destination: {host: reviews, subset: v2}, weight: 20}
""")
    assert errors_of(text) == [
        VS + "spec.http[0].route: weights sum to 90, must sum to 100 "
        "(adjust the 'weight' of each destination so they add up to 100)"
    ]


def test_single_destination_needs_no_weight() -> None:
    route = HTTPRoute(route=[HTTPRouteDestination(destination=Destination(host="reviews"))])
    service = VirtualService(
        metadata=ObjectMeta(name="r"), spec=VirtualServiceSpec(hosts=["reviews"], http=[route])
    )
    assert validate(service) == []


def test_negative_weight(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  tcp:
  - route:
    - {destination: {host: a}, weight: 110}
    - {destination: {host: b}, weight: -10}
""")
    assert errors_of(text) == [
        VS + "spec.tcp[0].route[1].weight: weight -10 is negative (use a weight from 0 to 100)"
    ]


def test_tls_route_weights_are_checked_too(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  tls:
  - match: [{sniHosts: [reviews.example.com]}]
    route:
    - {destination: {host: a}, weight: 50}
    - {destination: {host: b}, weight: 40}
""")
    assert errors_of(text) == [
        VS + "spec.tls[0].route: weights sum to 90, must sum to 100 "
        "(adjust the 'weight' of each destination so they add up to 100)"
    ]


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"(a)\\1", r"a backreference (\1)"),
        ("(?=admin)", "a lookahead"),
        ("(?!admin)", "a negative lookahead"),
        ("(?<=/)api", "a lookbehind"),
        ("(?<!/)api", "a negative lookbehind"),
        ("(?>abc)", "an atomic group"),
        ("a++", "a possessive quantifier"),
    ],
)
def test_regex_features_re2_lacks_are_refused(
    errors_of: Errors, pattern: str, construct: str
) -> None:
    text = vs(f"""
  hosts: [reviews]
  http:
  - match: [{{uri: {{regex: "{pattern}"}}}}]
    route: [{{destination: {{host: reviews}}}}]
""")
    (line,) = errors_of(text)
    assert line.startswith(VS + "spec.http[0].match[0].uri.regex: regex ")
    assert "which RE2 does not support" in line
    assert f"uses {construct}" in line


def test_invalid_regex(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - match: [{headers: {x-user: {regex: "[a-"}}}]
    route: [{destination: {host: reviews}}]
""")
    (line,) = errors_of(text)
    assert line.startswith(
        VS + "spec.http[0].match[0].headers.x-user.regex: regex '[a-' is invalid"
    )


@pytest.mark.parametrize(
    "pattern", [r"^/api/v[0-9]+/.*", r"(?i)admin", r"a+?b*?", r"[(?=]x", r"\p{Greek}+", r"a{2,3}"]
)
def test_regexes_re2_supports_pass(pattern: str) -> None:
    assert re2_error(pattern) is None


def test_string_match_needs_exactly_one_kind(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /api, exact: /api/v1}
      authority: {}
      headers: {x-canary: {}}
    route: [{destination: {host: reviews}}]
""")
    assert errors_of(text) == [
        VS + "spec.http[0].match[0].uri: sets exact and prefix; a match takes exactly one of "
        "exact, prefix or regex (keep only one of exact, prefix)",
        VS + "spec.http[0].match[0].authority: is empty; a match takes exactly one of exact, "
        "prefix or regex (add 'exact: <value>', 'prefix: <value>' or 'regex: <pattern>')",
    ]  # an empty header match is a presence test, which is valid


def test_route_and_redirect_together(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    redirect: {uri: /v2}
  - route: [{destination: {host: reviews}}]
    directResponse: {status: 503}
""")
    assert errors_of(text) == [
        VS + "spec.http[0]: http route has both route and redirect; it can take only one "
        "action (keep only one of route, redirect)",
        VS + "spec.http[1]: http route has both route and directResponse; it can take only one "
        "action (keep only one of route, directResponse)",
    ]


def test_http_route_without_action(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - name: forgotten
    match: [{uri: {prefix: /}}]
""")
    assert errors_of(text) == [
        VS + "spec.http[0]: http route has no route, redirect, directResponse or delegate "
        "(add a 'route' with at least one destination)"
    ]


def test_virtual_service_without_hosts(errors_of: Errors) -> None:
    text = vs("""
  gateways: [bookinfo-gateway]
  http: [{route: [{destination: {host: reviews}}]}]
""")
    (line,) = errors_of(text)
    assert line.startswith(VS + "spec.hosts: VirtualService has no hosts (list the hosts")


def test_virtual_service_without_hosts_is_a_valid_delegate() -> None:
    text = vs("""
  http: [{match: [{uri: {prefix: /reviews}}], route: [{destination: {host: reviews}}]}]
""")
    assert len(load_yaml(text, "delegate.yaml")) == 1


def test_invalid_host_names(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews, "", "bad_name.example.com", "api.*.example.com"]
  http: [{route: [{destination: {host: "Reviews!"}}]}]
""")
    lines = errors_of(text)
    assert [line.split(": ")[2] for line in lines] == [
        "spec.hosts[1]",
        "spec.hosts[2]",
        "spec.hosts[3]",
        "spec.http[0].route[0].destination.host",
    ]
    assert "host name is empty" in lines[0]
    assert "label 'bad_name' may contain only letters, digits and '-'" in lines[1]
    assert "'*' is only allowed as the whole first label" in lines[2]


def test_bad_duration(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    timeout: 10
    retries: {attempts: 2, perTryTimeout: 2 seconds}
""")
    assert errors_of(text) == [
        VS + "spec.http[0].timeout: duration must be a string with a unit, got 10 "
        '(write a number followed by a unit: "10s", "1.5s", "100ms", "1m", "1h30m")',
        VS + "spec.http[0].retries.perTryTimeout: '2 seconds' is not a valid duration "
        '(write a number followed by a unit: "10s", "1.5s", "100ms", "1m", "1h30m")',
    ]


def test_port_out_of_range(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - match: [{port: 70000}]
    route: [{destination: {host: reviews, port: {number: 0}}}]
""")
    assert errors_of(text) == [
        VS + "spec.http[0].match[0].port: port 70000 is out of range 1..65535 "
        "(use a port number from 1 to 65535)",
        VS + "spec.http[0].route[0].destination.port.number: port 0 is out of range 1..65535 "
        "(use a port number from 1 to 65535)",
    ]


def test_destination_rule_without_host(errors_of: Errors) -> None:
    assert errors_of(obj("DestinationRule", "  host: ''\n")) == [
        "mesh.yaml: DestinationRule shop/thing: spec.host: DestinationRule has no host "
        "(set 'host' to a service name)"
    ]


def test_duplicate_subset_names(errors_of: Errors) -> None:
    text = obj(
        "DestinationRule",
        """
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v1, labels: {version: v3}}
""",
    )
    assert errors_of(text) == [
        "mesh.yaml: DestinationRule shop/thing: spec.subsets[2].name: subset name 'v1' is "
        "already used by spec.subsets[0] (give each subset a unique name)"
    ]


def test_service_entry_without_hosts_or_ports(errors_of: Errors) -> None:
    assert errors_of(obj("ServiceEntry", "  resolution: DNS\n")) == [
        "mesh.yaml: ServiceEntry shop/thing: spec.hosts: ServiceEntry has no hosts "
        "(list at least one host)",
        "mesh.yaml: ServiceEntry shop/thing: spec.ports: ServiceEntry has no ports "
        "(add 'ports: [{number: 443, protocol: TLS}]')",
    ]


def test_static_service_entry_needs_ip_endpoints(errors_of: Errors) -> None:
    text = obj(
        "ServiceEntry",
        """
  hosts: [db.internal]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: db1.internal}, {address: 10.1.1.1}]
""",
    )
    (line,) = errors_of(text)
    assert line.startswith(
        "mesh.yaml: ServiceEntry shop/thing: spec.endpoints[0].address: 'db1.internal' is not "
        "an IP address"
    )


def test_workload_entry_needs_an_address_unless_on_another_network(errors_of: Errors) -> None:
    assert errors_of(obj("WorkloadEntry", "  labels: {app: ratings}\n")) == [
        "mesh.yaml: WorkloadEntry shop/thing: spec.address: workload has no address "
        "(set 'address' (IP, DNS name or unix:///path), or 'network' for a remote network)"
    ]
    assert load_yaml(obj("WorkloadEntry", "  network: vpc-2\n"), "we.yaml")


def test_gateway_server_needs_port_and_hosts(errors_of: Errors) -> None:
    text = obj(
        "Gateway",
        """
  selector: {istio: ingressgateway}
  servers:
  - hosts: ["*"]
  - port: {number: 80, protocol: HTTP, name: http}
""",
    )
    assert errors_of(text) == [
        "mesh.yaml: Gateway shop/thing: spec.servers[0].port: server has no port "
        "(add 'port: {number: 80, protocol: HTTP}')",
        "mesh.yaml: Gateway shop/thing: spec.servers[1].hosts: server has no hosts "
        "(list hosts, e.g. ['*'])",
    ]


def test_https_gateway_server_needs_tls(errors_of: Errors) -> None:
    text = obj(
        "Gateway",
        """
  servers:
  - port: {number: 443, protocol: HTTPS, name: https}
    hosts: [books.example.com]
""",
    )
    (line,) = errors_of(text)
    assert line.startswith(
        "mesh.yaml: Gateway shop/thing: spec.servers[0].tls: server with protocol HTTPS has no tls"
    )


def test_sidecar_egress_hosts_need_a_namespace(errors_of: Errors) -> None:
    text = obj(
        "Sidecar",
        """
  egress:
  - hosts: ["./*", "reviews.shop.svc.cluster.local", "Bad_NS/*"]
""",
    )
    assert errors_of(text) == [
        "mesh.yaml: Sidecar shop/thing: spec.egress[0].hosts[1]: host "
        "'reviews.shop.svc.cluster.local' is not in namespace/dnsName form (write it as "
        "'*/reviews.shop.svc.cluster.local' (any namespace) or "
        "'./reviews.shop.svc.cluster.local' (this namespace))",
        "mesh.yaml: Sidecar shop/thing: spec.egress[0].hosts[2]: 'Bad_NS' in 'Bad_NS/*' is not "
        "a namespace (use '*', '.', '~' or a namespace name before the '/')",
    ]


def test_workload_group_probe_takes_one_check(errors_of: Errors) -> None:
    text = obj(
        "WorkloadGroup",
        """
  template: {ports: {http: 9080}}
  probe:
    httpGet: {path: /ready, port: 9080}
    tcpSocket: {port: 9080}
""",
    )
    assert errors_of(text) == [
        "mesh.yaml: WorkloadGroup shop/thing: spec.probe: probe sets 2 health checks; it takes "
        "exactly one (use one of httpGet, tcpSocket, exec or grpc)"
    ]


def fault_rule(fault: str) -> str:
    return vs(f"""
  hosts: [ratings]
  http:
  - fault: {fault}
    route: [{{destination: {{host: ratings}}}}]
""")


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (
            "{abort: {http2Error: REFUSED_STREAM}}",
            "spec.http[0].fault.abort.http2Error: http2Error is not supported (abort with "
            "'httpStatus' (e.g. 503) or 'grpcStatus' (e.g. UNAVAILABLE))",
        ),
        (
            "{delay: {exponentialDelay: 1s}}",
            "spec.http[0].fault.delay.exponentialDelay: exponentialDelay is not supported "
            "(use 'fixedDelay', e.g. 'fixedDelay: 5s')",
        ),
        (
            "{delay: {fixedDelay: 0s, percentage: {value: 5}}}",
            "spec.http[0].fault.delay.fixedDelay: duration '0s' is shorter than 1ms "
            "(use a duration of at least 1ms)",
        ),
        (
            "{abort: {grpcStatus: NOT_A_CODE}}",
            "spec.http[0].fault.abort.grpcStatus: 'NOT_A_CODE' is not a gRPC status name "
            "(use a name such as UNAVAILABLE, INTERNAL or DEADLINE_EXCEEDED)",
        ),
        (
            "{abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}}",
            "spec.http[0].fault.abort: sets both httpStatus and grpcStatus (keep only one of them)",
        ),
        (
            "{}",
            "spec.http[0].fault: fault has no delay or abort "
            "(add 'delay' or 'abort', or drop 'fault')",
        ),
    ],
)
def test_faults_envoy_cannot_inject_are_refused(
    errors_of: Errors, fault: str, problem: str
) -> None:
    assert errors_of(fault_rule(fault)) == [VS + problem]


def test_a_grpc_abort_by_name_is_accepted() -> None:
    assert load_yaml(fault_rule("{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}}"), "f")


def direct_response_rule(body: str) -> str:
    return vs(f"""
  hosts: [ratings]
  http:
  - directResponse: {{status: 200, body: {body}}}
""")


def test_a_direct_response_body_must_be_base64_bytes(errors_of: Errors) -> None:
    assert errors_of(direct_response_rule("{bytes: 'not base64!'}")) == [
        VS + "spec.http[0].directResponse.body.bytes: 'not base64!' is not base64 "
        "(encode the body in base64, e.g. 'aGVsbG8=' for hello)"
    ]
    # Padding may be left out, and the URL-safe alphabet is read too.
    assert load_yaml(direct_response_rule("{bytes: 'AAH_c3RhcnM'}"), "ok.yaml")


def test_a_direct_response_body_over_envoys_limit_is_refused(errors_of: Errors) -> None:
    assert errors_of(direct_response_rule("{string: '" + "x" * 4097 + "'}")) == [
        VS + "spec.http[0].directResponse.body: body is 4097 bytes; a direct response body is at "
        "most 4096 bytes (shorten the body, or serve it from a service)"
    ]
    assert load_yaml(direct_response_rule("{string: '" + "x" * 4096 + "'}"), "ok.yaml")


def test_a_protocol_default_port_needs_a_scheme_with_one(errors_of: Errors) -> None:
    text = vs("""
  hosts: [ratings]
  http:
  - redirect: {scheme: ftp, derivePort: FROM_PROTOCOL_DEFAULT}
""")
    assert errors_of(text) == [
        VS + "spec.http[0].redirect.derivePort: scheme 'ftp' has no default port "
        "(use scheme http or https, or set 'port')"
    ]


def test_deprecated_integer_percents_are_percentages(errors_of: Errors) -> None:
    text = vs("""
  hosts: [ratings]
  http:
  - fault: {delay: {fixedDelay: 1s, percent: 101}}
    mirror: {host: details}
    mirrorPercent: 150
    route: [{destination: {host: ratings}}]
""")
    assert errors_of(text) == [
        VS + "spec.http[0].fault.delay.percent: 101 is too large; must be at most 100",
        VS + "spec.http[0].mirrorPercent: 150 is too large; must be at most 100",
    ]


def test_passthrough_load_balancing_is_refused_with_why(errors_of: Errors) -> None:
    text = obj(
        "DestinationRule",
        """
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        loadBalancer: {simple: PASSTHROUGH}
""",
    )
    assert errors_of(text) == [
        "mesh.yaml: DestinationRule shop/thing: "
        "spec.subsets[0].trafficPolicy.portLevelSettings[0].loadBalancer.simple: PASSTHROUGH "
        "is not supported: it forwards to the address the client connected to, and a Weft "
        "sidecar receives outbound requests as their HTTP proxy, so that address is the sidecar "
        "itself (use ROUND_ROBIN, LEAST_REQUEST or RANDOM)"
    ]


def test_a_delegate_is_named_by_object_name_and_namespace(errors_of: Errors) -> None:
    text = vs("""
  hosts: [reviews]
  http:
  - delegate: {name: Reviews Routes, namespace: Team}
""")
    assert errors_of(text) == [
        VS + "spec.http[0].delegate.name: 'Reviews Routes' is not a VirtualService name "
        "(name the delegate VirtualService, e.g. 'reviews-routes')",
        VS + "spec.http[0].delegate.namespace: 'Team' is not a namespace "
        "(name the namespace of the delegate VirtualService, or leave it out for this one)",
    ]


def test_header_edits_envoy_refuses_are_refused(errors_of: Errors) -> None:
    text = vs("""
  hosts: [ratings]
  http:
  - headers:
      request:
        set: {":authority": ratings.internal, "x-ok": "a\\nb"}
        remove: [":path", "bad header"]
      response:
        add: {host: h, "": empty}
    route:
    - destination: {host: ratings}
      headers: {request: {add: {Host: elsewhere}}}
    match: [{headers: {"x\\u0000y": {exact: "1"}, ":path": {prefix: /}}}]
""")
    assert errors_of(text) == [
        VS + "spec.http[0].match[0].headers[\"x\\u0000y\"]: 'x\\x00y' is not a header name "
        "(use letters, digits and '-', e.g. 'x-request-id')",
        VS + "spec.http[0].headers.request.set.x-ok: value 'a\\nb' has a line break or NUL "
        "character (write the value on one line)",
        VS + "spec.http[0].headers.request.remove[0]: ':path' is a pseudo-header; Envoy cannot "
        "edit it (drop it)",
        VS + "spec.http[0].headers.request.remove[1]: 'bad header' is not a header name "
        "(use letters, digits and '-', e.g. 'x-request-id')",
        VS + "spec.http[0].headers.response.add.host: 'host' is the authority; Envoy cannot "
        "edit it (drop it)",
        VS + 'spec.http[0].headers.response.add[""]: header name is empty '
        "(use letters, digits and '-', e.g. 'x-request-id')",
    ]


def test_durations_envoy_needs_above_zero_are_at_least_1ms(errors_of: Errors) -> None:
    text = obj(
        "DestinationRule",
        """
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 0s}}
    outlierDetection: {interval: 0.5ms, baseEjectionTime: 99999999h}
""",
    )
    where = "mesh.yaml: DestinationRule shop/thing: spec.trafficPolicy."
    assert errors_of(text) == [
        where + "connectionPool.tcp.connectTimeout: duration '0s' is shorter than 1ms "
        "(use a duration of at least 1ms)",
        where + "outlierDetection.interval: duration '0.5ms' is shorter than 1ms "
        "(use a duration of at least 1ms)",
        where + "outlierDetection.baseEjectionTime: duration '99999999h' is longer than 10000 "
        "years (use a shorter duration)",
    ]


def test_client_tls_files_are_absolute_and_only_where_used(errors_of: Errors) -> None:
    text = obj(
        "DestinationRule",
        """
  host: reviews
  trafficPolicy:
    tls: {mode: MUTUAL, clientCertificate: cert.pem, privateKey: /etc/certs/key.pem}
  subsets:
  - name: v1
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCertificates: /etc/certs/ca.pem}}
  - name: v2
    trafficPolicy: {tls: {mode: SIMPLE, privateKey: /etc/certs/key.pem}}
""",
    )
    where = "mesh.yaml: DestinationRule shop/thing: spec."
    assert errors_of(text) == [
        where + "trafficPolicy.tls.clientCertificate: 'cert.pem' is not an absolute path "
        "(give the full path of the PEM file, e.g. /etc/certs/cert-chain.pem)",
        where + "subsets[0].trafficPolicy.tls.caCertificates: mode ISTIO_MUTUAL uses no "
        "caCertificates (drop it, or use mode SIMPLE or MUTUAL to use your own certificates)",
        where + "subsets[1].trafficPolicy.tls: sets only one of clientCertificate and privateKey "
        "(set both: the certificate and its private key)",
    ]


def test_hash_keys_and_counts_envoy_cannot_hold_are_refused(errors_of: Errors) -> None:
    text = obj(
        "DestinationRule",
        """
  host: reviews
  subsets:
  - name: v1
    trafficPolicy: {loadBalancer: {consistentHash: {httpQueryParameterName: ""}}}
  - name: v2
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: "x user"}}}
""",
    )
    where = "mesh.yaml: DestinationRule shop/thing: spec."
    assert errors_of(text) == [
        where + "subsets[0].trafficPolicy.loadBalancer.consistentHash.httpQueryParameterName: "
        "query parameter name is empty (name the parameter, e.g. user)",
        where + "subsets[1].trafficPolicy.loadBalancer.consistentHash.httpHeaderName: "
        "'x user' is not a header name (name the header, e.g. x-user)",
    ]
    counted = obj(
        "DestinationRule",
        """
  host: reviews
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 4294967296}}}
""",
    )
    assert errors_of(counted) == [
        where + "trafficPolicy.connectionPool.tcp.maxConnections: 4294967296 is too large; "
        "must be at most 4294967295",
    ]


def test_service_entry_endpoints_fit_its_resolution(errors_of: Errors) -> None:
    text = obj(
        "ServiceEntry",
        """
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: api.internal}]
""",
    )
    where = "mesh.yaml: ServiceEntry shop/thing: spec.endpoints[0].address: "
    assert errors_of(text) == [
        where + "'api.internal' is not an IP address (with resolution NONE, endpoints need IP "
        "addresses (or unix:///path); use resolution DNS for names)"
    ]
    sockets = text.replace("api.internal", "unix:///run/api.sock") + "  resolution: DNS\n"
    assert errors_of(sockets) == [
        where + "with resolution DNS, 'unix:///run/api.sock' cannot be resolved "
        "(use resolution STATIC for Unix socket endpoints)"
    ]
