"""Closed-loop driving simulation on procedurally generated roads (numpy/OpenCV only; no TensorFlow).

- :mod:`edgecnn.sim.road`: the road's centre line (varying curvature), lane width, pose -> offset look-ups.
- :mod:`edgecnn.sim.bicycle`: the kinematic bicycle model that moves the car.
- :mod:`edgecnn.sim.pursuit`: the ideal controller (pure pursuit), which labels the training frames.
- :mod:`edgecnn.sim.camera` and :mod:`edgecnn.sim.render`: the camera view, by inverse perspective mapping.
- :mod:`edgecnn.sim.simulate`: the closed loop and its metrics (autonomy, departures, offsets, distance).

Conventions: world metres, x east, y north, yaw counter-clockwise from +x in radians. Steering commands are in
[-1, 1] with positive = right (the contract's convention), i.e. a positive command turns clockwise.
"""
