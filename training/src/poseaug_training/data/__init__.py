"""Human3.6M loading, cameras and 2D-3D training pairs (kept resident as tensors)."""
