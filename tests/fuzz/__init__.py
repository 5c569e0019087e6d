"""The fuzz harness: mutated models, bundles and inputs through edgekit's CLI (``make fuzz``; a sample in
``make test``). Its crashes and failures are kept under ``regressions/`` and replayed by the tests."""
