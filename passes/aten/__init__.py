"""ATen passes: rewrites of exported (ATEN-level) programs."""
