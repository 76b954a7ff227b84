"""What agent and control plane say to each other: one module both import.

`node`: the xDS node id and metadata an agent writes into Envoy's bootstrap and the control
plane reads from every ADS stream. `registration`: the admin API's registration, heartbeat
and root-rotation messages and their answers. `names`: Kubernetes' rules for the names,
labels and ports in them. `wire`: how a message is parsed, and the error naming each bad field.
"""

from weft.contract.node import InboundPort, NodeMetadata, node_id
from weft.contract.registration import (
    Heartbeat,
    HeartbeatAnswer,
    MeshCredentials,
    Registration,
    RegistrationAnswer,
    RegistrationPort,
    RootRotation,
    WorkloadRef,
)
from weft.contract.wire import MessageError, parse_message

__all__ = [
    "Heartbeat",
    "HeartbeatAnswer",
    "InboundPort",
    "MeshCredentials",
    "MessageError",
    "NodeMetadata",
    "Registration",
    "RegistrationAnswer",
    "RegistrationPort",
    "RootRotation",
    "WorkloadRef",
    "node_id",
    "parse_message",
]
