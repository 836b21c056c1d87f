"""Generation through vLLM with the workbench's ``Steer`` semantics: ``options`` (``VLLMOptions``),
``worker`` (steering inside vLLM's worker) and ``engine`` (``VLLMEngine``, ``use_vllm``). Importing
this package does not import vLLM."""
