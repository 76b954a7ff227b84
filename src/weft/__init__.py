"""Weft: a service mesh that speaks Istio's APIs and runs real Envoy."""

import os as _os

# Weft processes run gRPC and also fork children (Envoy, apps). gRPC's fork handlers can crash
# a forked child before it execs; children here always exec at once, so they need none.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

__version__ = "0.1.0"
