"""pteflow: a pass-manager compiler infrastructure for ExecuTorch.

Packages: ``pteflow.ir`` (levels, Program, facts, invariants, views),
``pteflow.passes`` (the Pass contract, the PassManager, the passes),
``pteflow.backends`` (per-target probes, quantizers, partitioners, pipelines),
``pteflow.driver`` (the ``driver`` command), and ``pteflow.testing``.
"""

__version__ = "0.1.0"
