"""Deployment bundles (runtime lane, no TensorFlow).

- :mod:`edgekit.bundling.spec`: ``edgekit.json``, built from a model and checked against its JSON Schema.
- :mod:`edgekit.bundling.metadata`: the manifest carried inside the ``.tflite`` flatbuffer.
- :mod:`edgekit.bundling.app`: preprocessing and post-processing; shipped as the bundles' ``run.py``.
- :mod:`edgekit.bundling.templates`: ``run.py`` / ``requirements.txt`` and the Kotlin and Swift snippets.
- :mod:`edgekit.bundling.archive` and :mod:`edgekit.bundling.loader`: safe zips, and opening a bundle.
"""
