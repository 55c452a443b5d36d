"""The steering output head shared by the steering architectures (Keras, host only)."""

from __future__ import annotations

from edgecnn.errors import ModelError


def steering_head(x, num_outputs: int, head: str = "regression", components: int = 0, throttle: bool = False):
    """Keras tensor ``x`` (B, F) -> the model's output tensor.

    - ``head="regression"``: Dense + tanh, so steering (and throttle, when ``throttle``) is bounded to [-1, 1];
      (B, 1) or (B, 2) = [steering, throttle].
    - ``head="gmm"``: (B, 3K) mixture ``[K logits, K means, K log-sigmas]`` (see :mod:`edgecnn.models.gmm`);
      ``components`` is K (or ``num_outputs // 3`` when 0). Throttle is not modelled by the mixture.

    Raises ModelError when ``num_outputs`` disagrees with the head.
    """
    from keras import layers  # lazy: keras

    if head == "regression":
        want = 2 if throttle else 1
        if num_outputs != want:
            raise ModelError(f"a regression steering head has {want} output(s) (throttle={throttle}), got: {num_outputs}")
        return layers.Dense(num_outputs, activation="tanh", name="steering")(x)
    if head == "gmm":
        from edgecnn.models.gmm import gmm_head  # lazy: keras (gmm registers its loss with Keras on import)

        if throttle:
            raise ModelError("the gmm head models steering only; train throttle with --head regression")
        k = components or num_outputs // 3
        if k < 1 or num_outputs != 3 * k:
            raise ModelError(f"a gmm head with {k} components has {3 * k} outputs, got: {num_outputs}")
        return gmm_head(x, k)
    raise ModelError(f"steering head must be 'regression' or 'gmm', got: {head!r}")
