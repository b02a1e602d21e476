"""Source passes."""
