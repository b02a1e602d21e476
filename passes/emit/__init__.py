"""Writing the program out."""
