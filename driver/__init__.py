"""The ``driver`` command: run, plan and list pipelines of passes."""
