"""gRPC channels for one or many servers: message limits, TLS, round-robin balancing."""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2_grpc

from poseaug.v1 import poseaug_pb2_grpc
from poseaug_client.config import ClientConfig, split_host_port
from poseaug_client.version import __version__

# round_robin spreads calls over every address a target resolves to (all IPs of a DNS name,
# or every address of an ipv4:/ipv6: list) and skips the ones that are down.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_targets(servers: Sequence[str]) -> list[str]:
    """gRPC targets for the servers: one balanced target when every address is an IP literal
    of one family (grpc's round_robin does the rotation), else one target per server (the
    client rotates between them)."""
    if len(servers) == 1:
        return [servers[0]]
    families = set()
    for server in servers:
        host, _ = split_host_port(server)
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            return list(servers)
    if len(families) == 1:
        scheme = "ipv4" if families == {4} else "ipv6"
        return [f"{scheme}:{','.join(servers)}"]
    return list(servers)


def channel_options(config: ClientConfig) -> list[tuple[str, Any]]:
    """Channel arguments: 256 MB messages, round-robin, reconnects as fast as our retries."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.primary_user_agent", f"poseaug-client/{__version__}"),
        # Without these a channel whose first connect failed waits ~1 s, then up to 120 s,
        # before dialing again, and every retry in between fails at once.
        ("grpc.initial_reconnect_backoff_ms", max(1, int(config.initial_backoff * 1000))),
        ("grpc.min_reconnect_backoff_ms", max(1, int(config.initial_backoff * 1000))),
        ("grpc.max_reconnect_backoff_ms", max(1, int(config.max_backoff * 1000))),
    ]
    if config.tls_server_name:
        options.append(("grpc.ssl_target_name_override", config.tls_server_name))
    return options


def channel_credentials(config: ClientConfig) -> grpc.ChannelCredentials:
    """TLS credentials: system roots or `tls_ca`, plus a client certificate for mutual TLS."""
    return grpc.ssl_channel_credentials(
        root_certificates=config.tls_ca,
        private_key=config.tls_key,
        certificate_chain=config.tls_cert,
    )


@dataclass
class Endpoint:
    """One channel and the stubs bound to it."""

    target: str
    channel: grpc.Channel | grpc.aio.Channel
    poseaug: poseaug_pb2_grpc.PoseAugServiceStub
    health: health_pb2_grpc.HealthStub


class EndpointPool:
    """Channels to every target; `next()` rotates between them per call."""

    def __init__(self, config: ClientConfig, *, aio: bool) -> None:
        self.config = config
        module = grpc.aio if aio else grpc
        options = channel_options(config)
        self.endpoints = []
        for target in channel_targets(config.servers):
            if config.secure:
                channel = module.secure_channel(target, channel_credentials(config), options)
            else:
                channel = module.insecure_channel(target, options)
            self.endpoints.append(
                Endpoint(
                    target=target,
                    channel=channel,
                    poseaug=poseaug_pb2_grpc.PoseAugServiceStub(channel),
                    health=health_pb2_grpc.HealthStub(channel),
                )
            )
        self._cycle = itertools.cycle(self.endpoints)
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {config.token}"),) if config.token else ()
        )

    def next(self) -> Endpoint:
        return next(self._cycle)
