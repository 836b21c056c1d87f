"""Generation with steering: ``steering`` (``Steer``, operators applied by hooks, position masks),
``batching`` (left padding, positions, rows that fit), ``detection`` (conditional steering's pass),
``compiled`` (the fixed-shape decode step), ``decoding`` (the decode loops) and ``generate`` (batched,
KV-cached generation, the entry point). Import from the modules; ``workbench`` re-exports
``generate``, ``Generation``, ``Steer`` and ``steering``."""
