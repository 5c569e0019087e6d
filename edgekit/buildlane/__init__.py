"""The build lane's own code: everything of edgekit's stages that needs TensorFlow, Keras, TFMOT or scikit-learn.

Nothing in the runtime lane imports this package at module level (``make lint`` checks it): stage drivers
call into it lazily, inside the function that needs it. Its neighbours in the build lane are
``edgekit.converters`` (the format back-ends) and ``edgekit.models`` (the model zoo).

- :mod:`edgekit.buildlane.datasets`: recipe data sources and their train / val / test splits.
- :mod:`edgekit.buildlane.training`: precision, distribution strategy, tf.data, callbacks.
- :mod:`edgekit.buildlane.train`: a recipe's family trainer, run and saved as float32.
- :mod:`edgekit.buildlane.optimize`: the tf_keras bridge, TFMOT passes and fine-tuning of ``edgekit optimize``.
- :mod:`edgekit.buildlane.reference`: the Keras reference's outputs for ``edgekit validate`` (a child process).
"""
