"""Level conversions: export (EAGER->ATEN), to-edge, to-executorch."""
