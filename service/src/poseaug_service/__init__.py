"""gRPC server for PoseAug: 2D-to-3D lifting and pose augmentation on ONNX Runtime."""
