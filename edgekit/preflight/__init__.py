"""Pre-flight: what a model needs from a target before it is run there (runtime lane, no TensorFlow).

- :mod:`edgekit.preflight.memory`: parameter bytes and the activation arena's peak, planned the way
  TFLite's arena planner places tensors.
- :mod:`edgekit.preflight.edgetpu`: which ops the Edge TPU compiler maps, which stay on the CPU and why,
  and on-chip versus streamed parameter memory.
- :mod:`edgekit.preflight.gpu`: which ops LiteRT's GPU delegate cannot take.
"""
