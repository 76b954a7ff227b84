from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from weft.api import ConfigKey, load_file, load_json, load_yaml, parse_object
from weft.errors import ConfigError

Errors = Callable[[str], list[str]]

VS_HEADER = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
"""


def test_multi_document_file_loads_every_object(bookinfo_path: Path) -> None:
    objects = load_file(bookinfo_path)
    assert [obj.kind for obj in objects] == [
        "VirtualService",
        "DestinationRule",
        "ServiceEntry",
        "Gateway",
        "Sidecar",
        "WorkloadGroup",
        "WorkloadEntry",
    ]


def test_empty_documents_are_skipped() -> None:
    text = (
        "---\n---\n# nothing here\n---\n"
        + VS_HEADER
        + "spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n---\n"
    )
    assert [obj.key for obj in load_yaml(text, "x.yaml")] == [
        ConfigKey("VirtualService", "shop", "reviews")
    ]


def test_kubernetes_list_is_expanded() -> None:
    text = """
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: a}
  spec: {host: a}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: b}
  spec: {host: b}
"""
    assert [obj.metadata.name for obj in load_yaml(text, "list.yaml")] == ["a", "b"]


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "dr.json"
    doc = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "ratings"},
        "spec": {"host": "ratings", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }
    path.write_text(json.dumps(doc))
    (dr,) = load_file(path)
    assert dr.key == ConfigKey("DestinationRule", "default", "ratings")
    assert load_json(json.dumps([doc]), "x.json") == [dr]


def test_problem_names_file_object_and_field(errors_of: Errors) -> None:
    text = (
        VS_HEADER
        + """
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: "ten"
"""
    )
    assert errors_of(text) == [
        "mesh.yaml: VirtualService shop/reviews: spec.http[0].route[1].weight: "
        "expected an integer, got 'ten'"
    ]


def test_unknown_field_suggests_the_right_one(errors_of: Errors) -> None:
    text = (
        VS_HEADER
        + """
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subst: v1}
"""
    )
    assert errors_of(text) == [
        "mesh.yaml: VirtualService shop/reviews: spec.http[0].route[0].destination.subst: "
        "unknown field 'subst' (did you mean 'subset'?)"
    ]


def test_unknown_field_without_close_match_lists_known_fields(errors_of: Errors) -> None:
    text = VS_HEADER + "spec:\n  hosts: [reviews]\n  colour: blue\n"
    (line,) = errors_of(text)
    assert line.startswith("mesh.yaml: VirtualService shop/reviews: spec.colour: unknown field")
    assert "known fields here: hosts, gateways, http, tls, tcp, exportTo" in line


def test_wrong_types_say_what_was_expected(errors_of: Errors) -> None:
    text = (
        VS_HEADER
        + """
spec:
  hosts: reviews
  http:
  - match:
    - ignoreUriCase: maybe
      headers: {end-user: {exact: 42}}
    route: [{destination: {host: reviews}}]
"""
    )
    assert errors_of(text) == [
        "mesh.yaml: VirtualService shop/reviews: spec.hosts: expected a list, got 'reviews' "
        "(write each item on its own line starting with '- ')",
        "mesh.yaml: VirtualService shop/reviews: spec.http[0].match[0].headers.end-user.exact: "
        "expected a string, got 42 (put the value in quotes so YAML reads it as text)",
        "mesh.yaml: VirtualService shop/reviews: spec.http[0].match[0].ignoreUriCase: "
        "expected true or false, got 'maybe'",
    ]


def test_bad_enum_value_suggests_the_closest(errors_of: Errors) -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy: {loadBalancer: {simple: round_robn}}
"""
    (line,) = errors_of(text)
    assert line.startswith(
        "mesh.yaml: DestinationRule default/r: spec.trafficPolicy.loadBalancer.simple: "
        "'round_robn' is not one of 'UNSPECIFIED', 'RANDOM'"
    )
    assert line.endswith("(did you mean 'ROUND_ROBIN'?)")


def test_missing_required_field(errors_of: Errors) -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  subsets: [{labels: {version: v1}}]
"""
    assert errors_of(text) == [
        "mesh.yaml: DestinationRule default/r: spec.host: required field 'host' is missing "
        "(add 'host')",
        "mesh.yaml: DestinationRule default/r: spec.subsets[0].name: required field 'name' is "
        "missing (add 'name')",
    ]


def test_unsupported_api_version(errors_of: Errors) -> None:
    text = "apiVersion: networking.istio.io/v2\nkind: Sidecar\nmetadata: {name: s}\n"
    assert errors_of(text) == [
        "mesh.yaml: Sidecar default/s: apiVersion: 'networking.istio.io/v2' is not supported "
        "(use networking.istio.io/v1; networking.istio.io/v1beta1 and "
        "networking.istio.io/v1alpha3 are also accepted)"
    ]


def test_unknown_kind(errors_of: Errors) -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: Virtualservice\nmetadata: {name: x}\n"
    assert errors_of(text) == [
        "mesh.yaml: Virtualservice default/x: kind: kind 'Virtualservice' is not supported "
        "(did you mean 'VirtualService'? Kinds are case-sensitive)"
    ]


@pytest.mark.parametrize(
    ("document", "missing"),
    [
        ("apiVersion: networking.istio.io/v1\nmetadata: {name: a}\n", "kind"),
        ("kind: Sidecar\nmetadata: {name: a}\n", "apiVersion"),
        ("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {}\n", "metadata.name"),
        ("apiVersion: networking.istio.io/v1\nkind: Sidecar\n", "metadata.name"),
    ],
)
def test_document_without_identity_names_its_position(
    errors_of: Errors, document: str, missing: str
) -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: ok}\n---\n"
    (line,) = errors_of(text + document)
    assert f"document 2 (line 5) has no {missing}" in line
    assert line.startswith("mesh.yaml: ")


def test_document_that_is_not_a_mapping(errors_of: Errors) -> None:
    (line,) = errors_of("- just\n- a list\n")
    assert line.startswith("mesh.yaml: document 1 (line 1) is not an object (found list)")


def test_yaml_syntax_error_names_file_and_line(errors_of: Errors) -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: [unclosed\n"
    (line,) = errors_of(text)
    assert line.startswith("mesh.yaml: YAML syntax error at line 5")


def test_yaml_syntax_error_says_what_was_found(errors_of: Errors) -> None:
    # libyaml alone says "found undefined alias" and "found character that cannot start any
    # token"; users get the messages that name the alias and the tab.
    assert errors_of("apiVersion: v1\nkind: *kind\n") == [
        "mesh.yaml: YAML syntax error at line 2, column 7: found undefined alias 'kind' "
        "(check indentation, quoting and ':' separators around line 2)"
    ]
    assert errors_of("kind: Sidecar\nmetadata:\n\tname: a\n") == [
        "mesh.yaml: YAML syntax error at line 3, column 1: found character '\\t' that cannot "
        "start any token (indent with spaces around line 3: YAML does not allow tabs there)"
    ]


def test_control_character_names_its_line_and_column(errors_of: Errors) -> None:
    assert errors_of('kind: Sidecar\nmetadata: {name: "caf\u00e9\x07"}\n') == [
        "mesh.yaml: YAML syntax error at line 2, column 23: unacceptable character #x0007: "
        "special characters are not allowed (remove it, or write it as an escape inside double "
        'quotes (e.g. "\\u0007"))'
    ]


def test_duplicate_yaml_key_is_an_error(errors_of: Errors) -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nkind: Gateway\nmetadata: {name: a}\n"
    (line,) = errors_of(text)
    assert line.startswith(
        "mesh.yaml: YAML syntax error at line 3, column 1: found duplicate key 'kind'"
    )


def test_same_object_twice_in_a_file(errors_of: Errors) -> None:
    doc = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\n"
    assert errors_of(doc + "---\n" + doc) == [
        "mesh.yaml: Sidecar default/a: is defined twice in this file (document 1 (line 1) and "
        "document 2 (line 5)) (keep one definition; later ones would silently replace earlier ones)"
    ]


def test_one_bad_document_loads_nothing_and_all_problems_are_reported(
    bookinfo_text: str,
) -> None:
    bad = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: broken}
spec: {host: ratings, subsets: [{name: v1}, {name: v1}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec: {servers: [{port: {number: 80, protocol: HTTP}}]}
"""
    with pytest.raises(ConfigError) as info:
        load_yaml(bookinfo_text + bad, "bookinfo.yaml")
    problems = info.value.problems
    assert [(p.kind, p.name, p.field) for p in problems] == [
        ("DestinationRule", "broken", "spec.subsets[1].name"),
        ("Gateway", "gw", "spec.servers[0].hosts"),
    ]
    assert str(info.value).startswith("2 problems:\n  - bookinfo.yaml: DestinationRule")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path}: cannot read file")


def test_parse_object_counts_documents_from_one() -> None:
    with pytest.raises(ConfigError) as info:
        parse_object({"kind": "Sidecar"}, "kubernetes", 0)
    assert str(info.value).startswith("kubernetes: Sidecar: document 1 has no apiVersion")
