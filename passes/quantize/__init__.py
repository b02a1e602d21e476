"""Quantize passes."""
