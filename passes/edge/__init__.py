"""Edge passes."""
