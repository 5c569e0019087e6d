"""The parts of ``edgekit validate`` (runtime lane, no TensorFlow): labelled data, task metrics, budgets,
measuring cells, the Keras reference (in a child process) and the report. The entry point is
:func:`edgekit.validate.validate`."""
