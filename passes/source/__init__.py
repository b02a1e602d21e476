"""Source passes: EAGER -> EAGER rewrites of the model, before export.

Each wraps a transform from ExecuTorch's
``examples/models/llama/source_transformation/`` (what export_llama's flags
apply) and turns the ordering rules export_llama keeps in comments into
declared facts and ``after`` constraints. They run on a copy of the program's
modules that shares the tensors, so the input program stays intact.

"KV cache on" is not one of them: in ExecuTorch it is a construction argument
(``ModelArgs.use_kv_cache``) that changes the model's inputs, example inputs
and dynamic shapes, which a pass could not change without also changing the
eager reference the ``.pte`` is verified against. The Llama model sources
(``pteflow.driver.models.llama``) build the cache and give the program the
``kv_cache`` fact.
"""
