"""``edgecnn record``: capture training data on the device.

- :mod:`edgecnn.runtime.record.manual`: the human's commands (web page, keyboard, gamepad) and the fail-safe rule
  for them (a page that stops sending -> neutral within the deadline), pure functions with the clock passed in;
- :mod:`edgecnn.runtime.record.drive`: the fixed-rate drive recorder writing a Donkey Car tub v2;
- :mod:`edgecnn.runtime.record.images`: labelled snapshots into an image folder (one sub-folder per class);
- :mod:`edgecnn.runtime.record.gamepad`: a Linux gamepad through evdev (optional).
"""
