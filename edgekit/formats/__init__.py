"""Readers for model file formats that need no runtime (and never TensorFlow)."""
