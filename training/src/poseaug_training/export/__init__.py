"""Model bundles: ONNX lifter and augmentor plus manifest.json (see models/README.md)."""
