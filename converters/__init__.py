"""Format back-ends (imported as ``edgekit.converters``): Keras → TFLite / ONNX, the tf_keras bridge."""
