"""Istio's certificate signing API, `istio.v1.auth.IstioCertificateService`, built at import.

The messages are declared here from the API's facts (package, names, field numbers) instead of
generated code, so no protoc step is needed:

    message IstioCertificateRequest  { string csr = 1; int64 validity_duration = 3;
                                       google.protobuf.Struct metadata = 4; }
    message IstioCertificateResponse { repeated string cert_chain = 1; }
    service IstioCertificateService  { rpc CreateCertificate(IstioCertificateRequest)
                                       returns (IstioCertificateResponse); }

`validity_duration` is in seconds; `cert_chain` is PEM, leaf first and root last.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2
from google.protobuf.message_factory import GetMessageClass

PACKAGE = "istio.v1.auth"
SERVICE = f"{PACKAGE}.IstioCertificateService"
METHOD = f"/{SERVICE}/CreateCertificate"

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="weft/istio/v1/auth/ca.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/struct.proto"],
    )
    req = f.message_type.add(name="IstioCertificateRequest")
    req.field.add(name="csr", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    req.field.add(name="validity_duration", number=3, type=_F.TYPE_INT64, label=_F.LABEL_OPTIONAL)
    req.field.add(
        name="metadata",
        number=4,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_OPTIONAL,
        type_name=".google.protobuf.Struct",
    )
    resp = f.message_type.add(name="IstioCertificateResponse")
    resp.field.add(name="cert_chain", number=1, type=_F.TYPE_STRING, label=_F.LABEL_REPEATED)
    svc = f.service.add(name="IstioCertificateService")
    svc.method.add(
        name="CreateCertificate",
        input_type=f".{PACKAGE}.IstioCertificateRequest",
        output_type=f".{PACKAGE}.IstioCertificateResponse",
    )
    return f


def _build() -> tuple[Any, Any]:
    pool = descriptor_pool.Default()
    try:
        fd = pool.FindFileByName("weft/istio/v1/auth/ca.proto")
    except KeyError:
        # Struct's file must be in the pool first.
        pool.FindFileByName(struct_pb2.DESCRIPTOR.name)
        fd = pool.Add(_file())
        fd = pool.FindFileByName("weft/istio/v1/auth/ca.proto")
    request = GetMessageClass(fd.message_types_by_name["IstioCertificateRequest"])
    response = GetMessageClass(fd.message_types_by_name["IstioCertificateResponse"])
    return request, response


IstioCertificateRequest, IstioCertificateResponse = _build()
