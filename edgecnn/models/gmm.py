"""The Gaussian-mixture steering head (Keras, host only) and its negative log-likelihood loss.

The navigation lecture maps a frame to a probability distribution over steering, trained by minimising
``-log P(steering | image)``. Here that distribution is a mixture of K Gaussians. The head emits ONE flat tensor of
3K values ``[K logits, K means, K log-sigmas]`` (one output, so it quantizes to int8 and exports like any other
model), each part bounded by a tanh so that a single int8 scale stays fine for all three (see
:mod:`edgecnn.mixture` for the bounds and the numpy maths the device uses). Only built-in layers are used, so a
saved model loads without custom objects or Lambda layers (``compile=False``; with ``compile=True`` import this
module first so the registered loss is found). Host only: imports Keras.
"""

from __future__ import annotations

import math

import keras

from edgecnn.mixture import LOG_SIGMA_MAX, LOG_SIGMA_MIN, LOGIT_BOUND

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def gmm_head(x, components: int, name: str = "gmm"):
    """Keras tensor ``x`` (B, F) -> (B, 3K) mixture parameters, bounded as :mod:`edgecnn.mixture` documents."""
    from keras import layers  # lazy: keras

    if components < 1:
        raise ValueError(f"a gmm head needs at least 1 component, got: {components}")
    logits = layers.Dense(components, activation="tanh", name=f"{name}_logits_t")(x)
    logits = layers.Rescaling(LOGIT_BOUND, name=f"{name}_logits")(logits)
    means = layers.Dense(components, activation="tanh", name=f"{name}_means")(x)
    half = (LOG_SIGMA_MAX - LOG_SIGMA_MIN) / 2.0
    mid = (LOG_SIGMA_MAX + LOG_SIGMA_MIN) / 2.0
    log_sigmas = layers.Dense(components, activation="tanh", name=f"{name}_log_sigmas_t")(x)
    log_sigmas = layers.Rescaling(half, offset=mid, name=f"{name}_log_sigmas")(log_sigmas)
    return layers.Concatenate(axis=-1, name=name)([logits, means, log_sigmas])


# Registered so that a model compiled with this loss reloads with compile=True once this module is imported.
@keras.saving.register_keras_serializable(package="edgecnn")
def gmm_nll(y_true, y_pred):
    """Mixture negative log-likelihood per sample (nats), for ``model.compile(loss=gmm_nll)``.

    ``y_true``: (B,) or (B, 1+) float steering in [-1, 1] (only the first column is used). ``y_pred``: (B, 3K)
    as produced by :func:`gmm_head`. Returns (B,) losses. Computed with a log-sum-exp for stability.
    """
    from keras import ops  # lazy: keras

    y_pred = ops.cast(y_pred, "float32")
    k = y_pred.shape[-1] // 3
    y = ops.cast(y_true, "float32")
    y = ops.reshape(y, (ops.shape(y)[0], -1))[:, :1]  # (B, 1)
    logits, means, log_sigmas = y_pred[:, :k], y_pred[:, k : 2 * k], y_pred[:, 2 * k :]
    log_w = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    z = (y - means) * ops.exp(-log_sigmas)
    log_p = log_w - 0.5 * z * z - log_sigmas - _LOG_SQRT_2PI
    return -ops.logsumexp(log_p, axis=-1)


@keras.saving.register_keras_serializable(package="edgecnn")
def gmm_nll_weighted(y_true, y_pred):
    """The mixture NLL (nats) averaged over several labels per sample, for ``model.compile``.

    ``y_true``: (B, 2M) float ``[steering_0 .. steering_{M-1}, weight_0 .. weight_{M-1}]``, weights >= 0 summing
    to 1 per row (:func:`edgecnn.data.navigation.branch_targets`: an unrouted navigation model at a junction's
    approach learns every branch). ``y_pred``: (B, 3K) from :func:`gmm_head`. Returns (B,) losses: the sum over
    m of ``weight_m * NLL(steering_m)``. With M = 1 and weight 1 it is :func:`gmm_nll`.
    """
    from keras import ops  # lazy: keras

    y_pred = ops.cast(y_pred, "float32")
    k = y_pred.shape[-1] // 3
    y = ops.cast(y_true, "float32")
    m = y.shape[-1] // 2
    targets, weights = y[:, :m, None], y[:, m:]  # (B, M, 1), (B, M)
    logits, means, log_sigmas = y_pred[:, None, :k], y_pred[:, None, k : 2 * k], y_pred[:, None, 2 * k :]
    log_w = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    z = (targets - means) * ops.exp(-log_sigmas)
    log_p = log_w - 0.5 * z * z - log_sigmas - _LOG_SQRT_2PI  # (B, M, K)
    return -ops.sum(weights * ops.logsumexp(log_p, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="edgecnn")
def gmm_mean(y_pred):
    """(B, 3K) -> (B,) mixture mean steering, for metrics such as the mean absolute error in training."""
    from keras import ops  # lazy: keras

    k = y_pred.shape[-1] // 3
    w = ops.softmax(y_pred[:, :k], axis=-1)
    return ops.sum(w * y_pred[:, k : 2 * k], axis=-1)
