"""The 3D viewer in a real browser (headless Chromium)."""
