"""Backends: one module per target."""
