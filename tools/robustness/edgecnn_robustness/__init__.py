"""Robustness campaign: hostile and broken models, interrupted writes, faulty data, measured.

``mutate`` makes damaged copies of our own .tflite files, ``campaign`` runs them through ``inspect``, ``benchmark``
and ``classify`` (library and CLI) and classifies what happened, ``killtest`` interrupts ``quantize`` and
``export`` with kill -9, ``faults`` injects bad files into image folders and tubs, ``report`` prints and saves the
figures. ``edgecnn robustness`` runs it all; ``tests/test_robustness_*.py`` run the short form.

A developer tool, its own distribution (``tools/robustness``), kept out of the ``edgecnn`` package a device
installs: it imports edgecnn, edgecnn never imports it (the ``robustness`` command loads it when run).
"""
