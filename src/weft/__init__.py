"""Weft: a service mesh that speaks Istio's APIs and runs real Envoy."""

__version__ = "0.1.0"
