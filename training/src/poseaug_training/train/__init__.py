"""Baseline and PoseAug training loops (Algorithm 1), checkpoints and distributed setup."""
