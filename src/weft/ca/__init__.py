"""Certificate authority (Istio's Citadel): workload identities as SPIFFE X.509 certificates."""
