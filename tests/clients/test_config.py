"""Client settings that need no server: addresses, tokens, targets and chunk sizes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from poseaug_client import ClientConfig, PoseAugClient, PoseAugError
from poseaug_client.channel import channel_options, channel_targets
from poseaug_client.config import parse_servers
from poseaug_client.jobs import (
    augment_outputs_per_call,
    chunk_bounds,
    chunk_seed,
    lift_chunk_size,
    stream_sources_per_call,
)


def test_server_lists_and_default_port() -> None:
    assert parse_servers("a:1, b") == ("a:1", "b:50051")
    assert parse_servers(["[::1]:7", "::1"]) == ("[::1]:7", "[::1]:50051")
    for bad in ("", "a:0", "a:x", ":5"):
        with pytest.raises(PoseAugError):
            parse_servers(bad)


def test_targets_use_grpc_round_robin_for_ip_lists_only() -> None:
    assert channel_targets(["10.0.0.1:1", "10.0.0.2:2"]) == ["ipv4:10.0.0.1:1,10.0.0.2:2"]
    assert channel_targets(["[::1]:1", "[::2]:2"]) == ["ipv6:[::1]:1,[::2]:2"]
    assert channel_targets(["a:1", "10.0.0.2:2"]) == ["a:1", "10.0.0.2:2"]
    assert channel_targets(["svc.ns:50051"]) == ["svc.ns:50051"]
    options = dict(channel_options(ClientConfig()))
    assert options["grpc.max_receive_message_length"] == 256 * 1024 * 1024
    assert options["grpc.max_send_message_length"] == 256 * 1024 * 1024
    assert "round_robin" in options["grpc.service_config"]


def test_token_precedence_argument_file_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("POSEAUG_TOKEN", "from-env")
    (tmp_path / "t").write_text(" from-file\n")
    assert ClientConfig.create(token="arg", token_file=tmp_path / "t").token == "arg"
    assert ClientConfig.create(token_file=tmp_path / "t").token == "from-file"
    assert ClientConfig.create().token == "from-env"
    monkeypatch.delenv("POSEAUG_TOKEN")
    assert ClientConfig.create().token is None
    with pytest.raises(PoseAugError, match="token_file"):
        ClientConfig.create(token_file=tmp_path / "missing")
    with PoseAugClient(token="abc") as client:
        assert client._pool.metadata == (("authorization", "Bearer abc"),)


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"max_poses_per_call": 0}, {"timeout": 0}, {"initial_backoff": -1}],
)
def test_bad_settings_are_refused(options) -> None:
    with pytest.raises(PoseAugError) as info:
        ClientConfig.create(**options)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_chunk_sizes_respect_pose_and_byte_limits() -> None:
    assert lift_chunk_size(ClientConfig(max_poses_per_call=10), 17) == 10
    small = ClientConfig(max_message_bytes=100_000)
    assert lift_chunk_size(small, 17) * 17 * 3 * 4 < 100_000
    assert augment_outputs_per_call(small) * (17 * 5 + 16 * 4 + 6) * 4 < 100_000
    assert stream_sources_per_call(ClientConfig()) > 1_000_000
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_chunk_seeds_keep_the_first_and_differ_later() -> None:
    seeds = [chunk_seed(42, i) for i in range(50)]
    assert seeds[0] == 42 and len(set(seeds)) == 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert seeds == [chunk_seed(42, i) for i in range(50)]
    assert np.int64(chunk_seed(2**63 - 1, 3)) >= 0
