"""Helpers both lanes share; TensorFlow-free, so the runtime lane can import every module here.

- :mod:`edgekit.common.io`: sha256 of files and folders, atomic writes, timestamps, tool versions.
- :mod:`edgekit.common.parity`: how closely an artifact reproduces its source, output by output.
- :mod:`edgekit.common.readers`: images, series and windows read from files.
- :mod:`edgekit.common.calibration`: representative data for quantization and the held-out check sample.
- :mod:`edgekit.common.cpu`: CPU features.
- :mod:`edgekit.common.timing`: latency loops, percentiles and peak memory.
"""
