"""The pipeline's stages, one package each: train → optimize → convert → validate → bundle.

A stage reads its inputs from a run directory (:class:`edgekit.rundir.RunDir`) and writes its own record
there; stages never import each other (a test checks it). :mod:`edgekit.pipeline` chains them.
Each stage package's driver runs in the runtime lane; what needs TensorFlow is called lazily from
:mod:`edgekit.buildlane` or runs in a child process (:mod:`edgekit.converters.worker`).
"""
