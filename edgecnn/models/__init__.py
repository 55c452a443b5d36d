"""Host side: Keras architectures, registered by name (see :mod:`edgecnn.models.registry`)."""
