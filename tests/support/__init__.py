"""Helpers shared by the service and client test suites (and bench/serve.py): small model
bundles built with onnx.helper, and a launcher for the real server process."""
