from __future__ import annotations

from pathlib import Path

import yaml

from weft.api import (
    ConfigKey,
    Destination,
    HTTPRoute,
    HTTPRouteDestination,
    ObjectMeta,
    VirtualService,
    VirtualServiceSpec,
    dump_json,
    dump_yaml,
    load_file,
    load_json,
    load_yaml,
    to_dict,
)


def test_dump_then_load_gives_the_same_objects(bookinfo_path: Path) -> None:
    objects = load_file(bookinfo_path)
    assert load_yaml(dump_yaml(objects), "again.yaml") == objects
    assert load_json(dump_json(objects), "again.json") == objects


def test_full_dump_by_alias_round_trips(bookinfo_path: Path) -> None:
    for obj in load_file(bookinfo_path):
        data = obj.model_dump(by_alias=True, exclude_none=True, mode="json")
        assert load_yaml(yaml.safe_dump(data), "x.yaml") == [obj]


def test_dump_keeps_files_readable() -> None:
    route = HTTPRoute(route=[HTTPRouteDestination(destination=Destination(host="reviews"))])
    service = VirtualService(
        metadata=ObjectMeta(name="reviews"),
        spec=VirtualServiceSpec(hosts=["reviews"], http=[route]),
    )
    assert dump_yaml([service]) == (
        "apiVersion: networking.istio.io/v1\n"
        "kind: VirtualService\n"
        "metadata:\n"
        "  name: reviews\n"
        "  namespace: default\n"
        "spec:\n"
        "  hosts:\n"
        "  - reviews\n"
        "  http:\n"
        "  - route:\n"
        "    - destination:\n"
        "        host: reviews\n"
    )


def test_to_dict_keeps_identity_and_istio_names(bookinfo_path: Path) -> None:
    (gateway,) = [o for o in load_file(bookinfo_path) if o.kind == "Gateway"]
    data = to_dict(gateway)
    assert list(data) == ["apiVersion", "kind", "metadata", "spec"]
    assert data["metadata"] == {"name": "bookinfo-gateway", "namespace": "bookinfo"}
    assert data["spec"]["servers"][1]["tls"]["credentialName"] == "books-cert"
    assert gateway.key == ConfigKey("Gateway", "bookinfo", "bookinfo-gateway")
