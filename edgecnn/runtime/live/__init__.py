"""The live page: ``--serve [HOST:]PORT`` on ``classify``, ``steer`` and ``record``.

- :mod:`edgecnn.runtime.live.policy`: where to bind and when a token is needed (pure functions);
- :mod:`edgecnn.runtime.live.frames`: the newest-frame slot the camera loop publishes into without ever waiting;
- :mod:`edgecnn.runtime.live.server`: :class:`~edgecnn.runtime.live.server.LiveView`, the aiohttp server on its
  own thread (page ``/``, MJPEG ``/stream.mjpg``, newest JPEG ``/frame.jpg``, ``/status.json``, ``/api/<name>``);
- ``page/``: the HTML/JS/CSS of the page (package data).
"""
