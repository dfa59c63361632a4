"""Errors that become gRPC status codes: parsing code raises them, the servicer turns them
into `context.abort`, so every message can name the offending field in one place."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A request failure with its gRPC code; `field` is the request field at fault (if any)."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InvalidArgumentError(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPreconditionError(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class CancelledError(ServiceError):
    """The caller went away (cancelled or deadline passed) before its work ran."""

    code = grpc.StatusCode.CANCELLED


class DeadlineExceededError(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnavailableError(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
