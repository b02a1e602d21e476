"""Partition passes."""
