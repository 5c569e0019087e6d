"""TFMOT passes on tf_keras models: pruning, weight clustering, quantization-aware training.

Each pass takes a tf_keras model (from :func:`edgekit.converters.bridge.to_tf_keras`
with ``flatten=True``), wraps the layers it supports, fine-tunes, and returns
the stripped result (QAT keeps its fake-quant graph: that is what converts to
int8). Chained passes become TFMOT's collaborative variants: clustering after
pruning preserves sparsity; QAT after pruning is PQAT, after clustering CQAT.

Example:
    >>> pruned = prune(legacy, PruneConfig(sparsity=0.5), fine_tune)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgekit.errors import InputError
from edgekit.stages.optimize.settings import CLUSTER_INITS, ClusterConfig, PruneConfig, QatConfig

FineTune = Callable[[Any, list[Any]], None]  # (wrapped model, extra callbacks) → fits it in place
PREPROCESSING = {"Resizing", "Rescaling", "Normalization", "InputLayer"}
FOLDED = {"BatchNormalization"}  # the 8-bit scheme's transforms fold it into the conv before it


def _tfmot() -> Any:
    import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS for tf.keras in this process

    return tfmot


def _clone(model: Any, wrap: Callable[[Any], Any]) -> Any:
    import tf_keras

    return tf_keras.models.clone_model(model, clone_function=wrap)


def _wrap_supported(model: Any, registry: Any, wrap: Callable[[Any], Any]) -> Any:
    """A clone of ``model`` with ``wrap`` applied to each layer with weights that ``registry`` supports, but not to
    BatchNorm (the converter folds it into the convolution before it)."""
    return _clone(
        model,
        lambda layer: (
            wrap(layer) if layer.weights and registry.supports(layer) and type(layer).__name__ not in FOLDED else layer
        ),
    )


def prune(model: Any, config: PruneConfig, fine_tune: FineTune, steps: int) -> Any:
    """Prune every prunable layer with weights to ``config.sparsity``; fine-tune over ``steps``; strip."""
    tfmot = _tfmot()
    sparsity = tfmot.sparsity.keras
    if config.schedule == "constant":
        schedule = sparsity.ConstantSparsity(config.sparsity, begin_step=0, frequency=max(1, steps // 20))
    else:
        end = max(2, int(steps * 0.7))  # reach the target with a third of the steps left to recover
        schedule = sparsity.PolynomialDecay(
            0.0, config.sparsity, begin_step=0, end_step=end, frequency=max(1, end // 20)
        )
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry as registry

    extra = {"sparsity_m_by_n": (2, 4)} if config.structured_2_4 else {}
    wrapped = _wrap_supported(
        model, registry, lambda layer: sparsity.prune_low_magnitude(layer, pruning_schedule=schedule, **extra)
    )
    fine_tune(wrapped, [sparsity.UpdatePruningStep()])
    return sparsity.strip_pruning(wrapped)


def cluster(model: Any, config: ClusterConfig, fine_tune: FineTune, preserve_sparsity: bool = False) -> Any:
    """Cluster the kernels of every clusterable layer into ``config.clusters`` centroids; fine-tune; strip."""
    tfmot = _tfmot()
    clustering = tfmot.clustering.keras
    init = getattr(clustering.CentroidInitialization, CLUSTER_INITS[config.init])
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry as registry,
    )

    params = {"number_of_clusters": config.clusters, "cluster_centroids_init": init}
    if preserve_sparsity:
        params["preserve_sparsity"] = True
    wrapped = _wrap_supported(model, registry, lambda layer: clustering.cluster_weights(layer, **params))
    fine_tune(wrapped, [])
    return clustering.strip_clustering(wrapped)


def _output_range_config() -> type:
    """A QuantizeConfig for preprocessing layers: output only, its range the min/max of all values seen.

    TFMOT's output-only config tracks an exponential moving average starting at
    [-6, 6] (decay 0.999): right for ReLU6 activations, but a few fine-tuning
    epochs leave raw pixel ranges (0–16, 0–255) clipped, which cost the QAT
    MobileNet 21 points of accuracy when measured.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quantizers
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_configs

    class OutputRangeConfig(default_8bit_quantize_configs.Default8BitOutputQuantizeConfig):
        def get_output_quantizers(self, layer: Any) -> list[Any]:
            return [quantizers.AllValuesQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    return OutputRangeConfig


# What TFMOT's 8-bit scheme can quantize after a layer; others (hard_silu, the bridge's Keras 3 functions) fail deep
# inside quantize_apply with a raw ValueError, so they are refused by layer name up front.
QAT_ACTIVATIONS = {"", "linear", "relu", "relu6", "swish", "gelu", "softmax", "sigmoid", "tanh"}


def _activation_name(layer: Any) -> str:
    """The name of a layer's activation function ('' when it has none)."""
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def quantize_aware(
    model: Any, config: QatConfig, fine_tune: FineTune, after: str | None = None, sparse: bool = False
) -> Any:
    """Quantization-aware training; ``after`` = ``prune`` (PQAT) or ``cluster`` (CQAT) preserves that structure.

    Preprocessing layers (Resizing, Rescaling, Normalization) get a trained
    range on their output only; any other layer the 8-bit scheme does not
    support is refused by name (``leave_float`` keeps named layers float).
    """
    tfmot = _tfmot()
    quantize = tfmot.quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_registry

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    unknown = sorted(set(config.leave_float) - {layer.name for layer in model.layers})
    if unknown:
        raise InputError(f"--leave-float: no layer named {', '.join(unknown)}")
    unsupported = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in model.layers
        if layer.name not in config.leave_float
        and type(layer).__name__ not in PREPROCESSING | FOLDED
        and (not registry.supports(layer) or _activation_name(layer) not in QAT_ACTIVATIONS)
    ]
    if unsupported:
        raise InputError(
            f"quantization-aware training does not support layer(s) {', '.join(unsupported)}; "
            f"leave them float with --leave-float {','.join(u.split(' ')[0] for u in unsupported)}"
        )

    output_range = _output_range_config()

    def annotate(layer: Any) -> Any:
        if layer.name in config.leave_float or type(layer).__name__ == "InputLayer":
            return layer
        if type(layer).__name__ in PREPROCESSING:  # a trained output range; left float, it is calibrated afterwards
            return quantize.quantize_annotate_layer(layer, output_range())
        return quantize.quantize_annotate_layer(layer)

    with quantize.quantize_scope({"OutputRangeConfig": output_range}):
        annotated = _clone(model, annotate)
    combine = tfmot.experimental.combine
    scheme = {
        "prune": combine.Default8BitPrunePreserveQuantizeScheme(),
        "cluster": combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=sparse),
        None: quantize.default_8bit.Default8BitQuantizeScheme(),
    }[after]
    with quantize.quantize_scope({"OutputRangeConfig": output_range}):
        qat = quantize.quantize_apply(annotated, scheme)
    fine_tune(qat, [])
    return qat
