"""Python client for the PoseAug service: numpy in, numpy out, over gRPC."""
