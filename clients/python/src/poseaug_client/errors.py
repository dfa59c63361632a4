"""One exception type for every failure, so callers need a single `except` clause."""

from __future__ import annotations

import grpc


class PoseAugError(Exception):
    """A failed call: the gRPC status code and the server's (or the client's) message.

    Client-side checks (wrong shapes, bad options) use the code the server would have sent
    (usually INVALID_ARGUMENT), so callers can treat both alike.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @property
    def code_name(self) -> str:
        """The status name, e.g. "UNAVAILABLE"."""
        return self.code.name

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> PoseAugError:
        """Wrap an error raised by grpc (sync `grpc.RpcError` or `grpc.aio.AioRpcError`)."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "")


def invalid_argument(message: str) -> PoseAugError:
    """A client-side input error, shaped like the server's INVALID_ARGUMENT."""
    return PoseAugError(grpc.StatusCode.INVALID_ARGUMENT, message)
