"""Post passes."""
