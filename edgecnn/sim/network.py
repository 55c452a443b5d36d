"""Road networks with junctions (T-junctions, crossroads, forks, plain curves) and routes through them.

A network is a tree of two-lane roads grown from a start node ``n0`` (at the origin, heading +x): 2-4 junctions
(``make_network``), each a T-junction (branches about 90 degrees left and right), a crossroads (left, straight,
right) or a fork (two branches 25-40 degrees either side), joined by gently curving roads of 6.5-10 m, with
dead-end roads of 4-8 m on every branch that leads nowhere else. Kind ``"curve"`` is a single curvy road with no
junction. Donkey Car scale, as :mod:`edgecnn.sim.road`: lane half-width 0.35-0.5 m, curvature at most
:data:`~edgecnn.sim.road.MAX_CURVATURE`, turns of 1.7 m radius or more, junction centres 5 m apart or more, and no
two roads closer than their surfaces plus 0.8 m except where they meet. Every road is straight for
:data:`STRAIGHT` metres where it meets a junction, so the turning arcs are exact circles. A junction's inner
corners are rounded (:meth:`SimNetwork.corners`, kerbs concentric with the turns) and its markings cut where they
would cross the road that meets them (:attr:`SimNetwork.markings`), for the renderer
(:func:`edgecnn.sim.render.build_network_scene`).

A route (:func:`plan_route`) is the networkx shortest path from a start to a goal node; its driving line (right-lane
centre) follows each road and turns through each junction on a circular arc (right turns 1.8 m radius, left turns
1.8 m + one lane, forks 4 m, less only if the straight stretch is too short). :func:`route_road` makes that line a
:class:`~edgecnn.sim.road.Road`, so the drive loop, :func:`~edgecnn.sim.pursuit.pure_pursuit` and ``Road.locate``
work unchanged. ``SimNetwork.geometry`` gives the device's :class:`edgecnn.navmap.RoadNetwork` (plain arrays, no
networkx), and ``plan_route`` returns an :class:`edgecnn.navmap.Route`, so maps are rasterised with the one
rasteriser and routes are saved with :func:`edgecnn.navmap.save_route`.

Deterministic: a network depends only on its generator's state. Training data draws networks from
:data:`NET_DATA_STREAM` and the simulator from :data:`NET_SIM_STREAM` (:func:`net_rng`), so test networks are
never training networks, whatever the seeds. Generation takes about 3-15 ms per network.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from edgecnn.errors import DataError
from edgecnn.navmap import Edge, RoadNetwork, Route
from edgecnn.sim.road import MAX_CURVATURE, TAIL, Road, road_rng

NET_DATA_STREAM = 2
NET_SIM_STREAM = 3
JUNCTION_KINDS = ("T", "cross", "fork")
KINDS = (*JUNCTION_KINDS, "curve")

DS = 0.05  # metres between the samples of an edge's centre line and of a route's driving line
STRAIGHT = 3.0  # metres of straight road on each side of a junction
ZONE_BEFORE, ZONE_AFTER = 2.5, 1.0  # a frame is "at" a junction from 2.5 m before its centre to 1.0 m after
R_RIGHT = 1.8  # turning radius of a right turn (m); a left turn adds one lane (2 half-widths), a fork uses R_FORK
R_FORK = 4.0
MIN_RADIUS = 1.7
_SEPARATION = 0.8  # metres of ground at least between the surfaces of two roads that do not meet
_NEAR_NODE = 4.5  # metres around a shared node where two roads may overlap (they meet there)


def net_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of network ``index`` of ``stream`` (NET_DATA_STREAM or NET_SIM_STREAM)."""
    return road_rng(seed, stream, index)


@dataclass(frozen=True)
class SimNetwork:
    """A road network for the simulator and the data generator.

    Attributes:
        graph: ``nx.Graph``; node attributes ``xy`` (tuple of 2 floats, metres) and ``kind`` ("start", "leaf",
            "T", "cross", "fork"); edge attributes ``id`` ("e0", ...), ``a`` and ``b`` (the node ids in the
            direction of ``points``), ``points`` (float64 (N, 2) ROAD CENTRE line a -> b, one point every
            :data:`DS` metres), ``half_width`` (lane half-width, m) and ``length`` (m).
        root: the start node (``"n0"``, at the origin, the road leaving it along +x).
        half_width: lane half-width (m), the same on every road of the network.
        kind: the kind asked of :func:`make_network` (None = a mix of junction kinds).
    """

    graph: nx.Graph
    root: str
    half_width: float
    kind: str | None = None

    @property
    def junctions(self) -> dict[str, str]:
        """{node id: kind} of the junction nodes, in node order."""
        return {n: k for n, k in self.graph.nodes(data="kind") if k in JUNCTION_KINDS}

    @property
    def leaves(self) -> tuple[str, ...]:
        """Dead-end nodes (possible goals), in node order."""
        return tuple(n for n, k in self.graph.nodes(data="kind") if k == "leaf")

    @functools.cached_property
    def geometry(self) -> RoadNetwork:
        """The network as the device sees it: :class:`edgecnn.navmap.RoadNetwork` (edge points every 0.1 m,
        rounded to the millimetre, so a JSON round trip gives the same arrays)."""
        g = self.graph
        nodes = {n: (round(float(x), 3), round(float(y), 3)) for n, (x, y) in g.nodes(data="xy")}
        edges = []
        for _u, _v, d in sorted(g.edges(data=True), key=lambda e: int(e[2]["id"][1:])):
            pts = d["points"]
            sub = pts[::2] if (len(pts) - 1) % 2 == 0 else np.vstack([pts[::2], pts[-1:]])
            edges.append(Edge(id=d["id"], a=d["a"], b=d["b"], points=np.round(sub, 3), half_width=round(d["half_width"], 4)))
        return RoadNetwork(nodes=nodes, edges=tuple(edges))

    def corners(self, extra: float = 0.0) -> tuple[Corner, ...]:
        """The rounded inner corners of every junction: where two roads meet at less than 160 degrees (not a
        fork's gore), the edge lines (``2 * half_width + extra`` m from their centre lines) are joined by an arc
        (the kerb) concentric with the turn a car makes there (radius ``R - half_width - extra``, R =
        :data:`R_RIGHT`, or :data:`R_FORK` between a fork's stem and branches), so a turning car keeps its lane,
        half a lane from the edge, through the junction. ``extra`` > 0 gives the outline of a wider surface.
        """
        g = self.graph
        out = []
        for node, kind in self.junctions.items():
            c = np.asarray(g.nodes[node]["xy"])
            legs = []
            for m in g.neighbors(node):
                p = _oriented(g, node, m)
                u = p[min(4, len(p) - 1)] - p[0]
                u /= np.linalg.norm(u)
                legs.append((math.atan2(u[1], u[0]) % (2 * math.pi), m, u))
            legs.sort(key=lambda leg: leg[0])
            pairs = []
            for i, (a_ang, a, ua) in enumerate(legs):
                b_ang, b, ub = legs[(i + 1) % len(legs)]
                pairs.append(((b_ang - a_ang) % (2 * math.pi), a, ua, b, ub))
            if kind == "fork":  # the gore between the two branches stays a point
                pairs.remove(min(pairs, key=lambda q: q[0]))
            offset = 2 * self.half_width + extra
            radius = max((R_FORK if kind == "fork" else R_RIGHT) - self.half_width - extra, 0.1)
            for phi, a, ua, b, ub in pairs:
                if phi >= math.radians(160):
                    continue
                na, nb = np.array([-ua[1], ua[0]]), np.array([-ub[1], ub[0]])
                pa, pb = c + offset * na, c - offset * nb  # a's left edge, b's right edge (leaving the node)
                cross = ua[0] * ub[1] - ua[1] * ub[0]
                w = pb - pa
                t = (w[0] * ub[1] - w[1] * ub[0]) / cross
                corner = pa + t * ua
                d = radius / math.tan(phi / 2)
                ta, tb = corner + d * ua, corner + d * ub
                centre = corner + radius / math.sin(phi / 2) * (ua + ub) / np.linalg.norm(ua + ub)
                a0 = math.atan2(ta[1] - centre[1], ta[0] - centre[0])
                sweep = _wrap(math.atan2(tb[1] - centre[1], tb[0] - centre[0]) - a0)
                ang = a0 + np.linspace(0.0, sweep, max(math.ceil(radius * abs(sweep) / DS), 2) + 1)
                arc = centre + radius * np.stack([np.cos(ang), np.sin(ang)], 1)
                out.append(Corner(node=node, a=a, b=b, point=corner, arc=arc, trim=d))
        return tuple(out)

    @functools.cached_property
    def markings(self) -> tuple[tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]], ...]:
        """Per edge (in id order): the runs of its left edge line, right edge line and centre line (each a list of
        float64 (K, 2) polylines, world metres), cut where they would cross another road's surface at a junction
        and where a rounded corner (:meth:`corners`, the kerb arcs: :attr:`kerbs`) takes over, so a junction is
        clean: no edge line across the road that meets it, no centre line into it."""
        g = self.graph
        hw = self.half_width
        # (edge a, edge b, side) -> (corner, direction of the edge line away from the corner point)
        trims: dict[tuple[str, str, int], list[tuple[Corner, np.ndarray]]] = {}
        for k in self.corners():
            for leg, left, end in ((k.a, True, k.arc[0]), (k.b, False, k.arc[-1])):
                d = g.edges[k.node, leg]
                own_left = left if d["a"] == k.node else not left  # the side in the edge's own direction
                trims.setdefault((d["a"], d["b"], 0 if own_left else 1), []).append((k, (end - k.point) / k.trim))
        out = []
        for u, v, d in sorted(g.edges(data=True), key=lambda e: int(e[2]["id"][1:])):
            c = d["points"]
            near = []  # centre lines of the roads meeting this one, near the node they share
            for n in (u, v):
                p = np.asarray(g.nodes[n]["xy"])
                for m in g.neighbors(n):
                    if {n, m} != {u, v}:
                        q = g.edges[n, m]["points"]
                        near.append(q[np.hypot(*(q - p).T) < 4 * hw + 1.0])
            others = np.vstack(near) if near else np.empty((0, 2))
            t = np.gradient(c, axis=0)
            t /= np.linalg.norm(t, axis=1, keepdims=True)
            normal = np.stack([-t[:, 1], t[:, 0]], 1)
            sides = []
            for side, off in enumerate((2 * hw, -2 * hw, 0.0)):
                line = c + off * normal
                keep = np.ones(len(line), bool)
                for k, away in trims.get((d["a"], d["b"], side), []):
                    node_xy = np.asarray(g.nodes[k.node]["xy"])
                    along = (line - k.point) @ away
                    keep &= ~((along < k.trim) & (np.hypot(*(line - node_xy).T) < STRAIGHT + 1.0))
                sides.append([r for seg in _split(line, keep) for r in _runs(seg, others, 2 * hw - 0.02)])
            out.append(tuple(sides))
        return tuple(out)

    @functools.cached_property
    def kerbs(self) -> tuple[np.ndarray, ...]:
        """The edge line arcs of the rounded junction corners (float64 (K, 2) each, world metres)."""
        return tuple(k.arc for k in self.corners())


@dataclass(frozen=True, eq=False)
class Corner:
    """A rounded inner corner of a junction (see :meth:`SimNetwork.corners`).

    Attributes:
        node: the junction; a, b: the neighbours whose roads meet there (b counter-clockwise from a).
        point: float64 (2,) where the two edge lines would meet; arc: float64 (K, 2) the kerb arc from a's edge
            line to b's; trim: metres of each edge line, from ``point``, that the arc replaces.
    """

    node: str
    a: str
    b: str
    point: np.ndarray
    arc: np.ndarray
    trim: float

    def polygon(self) -> np.ndarray:
        """float64 (K + 1, 2): the ground between the corner point and the arc (painted as road)."""
        return np.vstack([self.point[None], self.arc])


# --------------------------------------------------------------------------------------------------- generation


def _split(line: np.ndarray, keep: np.ndarray) -> list[np.ndarray]:
    """The stretches of ``line`` where ``keep`` is True."""
    out, i, n = [], 0, len(line)
    while i < n:
        if not keep[i]:
            i += 1
            continue
        j = i
        while j < n and keep[j]:
            j += 1
        out.append(line[i:j])
        i = j
    return out


def _runs(line: np.ndarray, others: np.ndarray, clear: float) -> list[np.ndarray]:
    """The stretches (2 points or more) of ``line`` (N, 2) at least ``clear`` metres from every point of
    ``others`` (M, 2)."""
    if len(line) < 2:
        return []
    if len(others) == 0:
        return [line]
    d2 = ((line[:, None, :] - others[None, :, :]) ** 2).sum(-1).min(1)
    return [r for r in _split(line, d2 >= clear * clear) if len(r) >= 2]


def _edge_centre(rng: np.random.Generator, start: np.ndarray, heading: float, length: float, straight_a: float,
                 straight_b: float, hw: float) -> np.ndarray:
    """float64 (N, 2) centre line of ``length`` m from ``start`` leaving at ``heading``: straight for
    ``straight_a`` m, gently curving, straight for the last ``straight_b`` m. Its curvature is bounded so that
    the inner lane's driving line (``hw`` inside it) turns no tighter than :data:`MIN_RADIUS` either."""
    bound = min(MAX_CURVATURE, 1.0 / (MIN_RADIUS + hw))
    n = round(length / DS) + 1
    s = np.arange(n) * DS
    kappa = np.zeros(n)
    a, b = straight_a, length - straight_b
    if b - a > 1.0:
        u = np.clip((s - a) / (b - a), 0.0, 1.0)
        window = np.sin(math.pi * u) ** 2
        for _ in range(2):
            kappa += rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * s / rng.uniform(4.0, 12.0) + rng.uniform(0, 2 * math.pi))
        kappa *= window * bound * rng.uniform(0.0, 1.0) / max(float(np.abs(kappa).max()), 1e-9)
    dh = np.concatenate([[0.0], np.cumsum(kappa[:-1] * DS)])
    swing = float(np.abs(dh).max())
    if swing > 0.9:  # at most about 50 degrees of wandering between two junctions
        dh *= 0.9 / swing
    h = heading + dh
    xy = np.empty((n, 2))
    xy[0] = start
    xy[1:, 0] = start[0] + np.cumsum(np.cos(h[:-1]) * DS)
    xy[1:, 1] = start[1] + np.cumsum(np.sin(h[:-1]) * DS)
    return xy


def _end_heading(points: np.ndarray) -> float:
    d = points[-1] - points[-2]
    return math.atan2(d[1], d[0])


def _branch_headings(rng: np.random.Generator, kind: str) -> list[float]:
    """Relative headings (rad, counter-clockwise) of a junction's branches, as seen arriving on its stem."""
    deg = math.radians
    if kind == "T":
        return [deg(90 + rng.uniform(-10, 10)), deg(-90 + rng.uniform(-10, 10))]
    if kind == "cross":
        return [deg(90 + rng.uniform(-10, 10)), deg(rng.uniform(-5, 5)), deg(-90 + rng.uniform(-10, 10))]
    return [deg(rng.uniform(25, 40)), deg(-rng.uniform(25, 40))]


def _is_clear(pts: np.ndarray, a: str, b: str, placed: list[tuple[np.ndarray, str, str]],
              xy: dict[str, np.ndarray], hw: float) -> bool:
    """True when the new edge ``a``-``b`` keeps its distance from every placed edge (except near shared nodes)."""
    need = 4 * hw + _SEPARATION
    new = pts[::4]
    for other, oa, ob in placed:
        old = other[::4]
        p, q = new, old
        for n in {a, b} & {oa, ob}:
            c = xy[n]
            p = p[np.hypot(*(p - c).T) > _NEAR_NODE]
            q = q[np.hypot(*(q - c).T) > _NEAR_NODE]
        if len(p) == 0 or len(q) == 0:
            continue
        d2 = ((p[:, None, :] - q[None, :, :]) ** 2).sum(-1)
        if float(d2.min()) < need * need:
            return False
    return True


def _try_network(rng: np.random.Generator, kinds: list[str], hw: float) -> nx.Graph | None:
    g = nx.Graph()
    xy: dict[str, np.ndarray] = {}
    placed: list[tuple[np.ndarray, str, str]] = []

    def add_node(pos: np.ndarray, kind: str) -> str:
        n = f"n{g.number_of_nodes()}"
        g.add_node(n, xy=(float(pos[0]), float(pos[1])), kind=kind)
        xy[n] = np.asarray(pos, float)
        return n

    def add_edge(a: str, b: str, pts: np.ndarray) -> None:
        g.add_edge(a, b, id=f"e{g.number_of_edges()}", a=a, b=b, points=pts, half_width=hw,
                   length=float((len(pts) - 1) * DS))
        placed.append((pts, a, b))

    root = add_node(np.zeros(2), "start")
    if not kinds:  # a plain curvy road
        pts = _edge_centre(rng, np.zeros(2), 0.0, float(rng.uniform(20.0, 30.0)), 1.0, 0.0, hw)
        add_edge(root, add_node(pts[-1], "leaf"), pts)
        return g
    pts = _edge_centre(rng, np.zeros(2), 0.0, float(rng.uniform(5.0, 8.0)), 1.0, STRAIGHT, hw)
    stubs: list[tuple[str, float]] = []  # (junction node, heading of a branch still to build)

    def open_junction(pts: np.ndarray, parent: str, kind: str) -> None:
        j = add_node(pts[-1], kind)
        add_edge(parent, j, pts)
        h = _end_heading(pts)
        stubs.extend((j, h + rel) for rel in _branch_headings(rng, kind))

    open_junction(pts, root, kinds[0])
    for kind in kinds[1:]:
        for k in rng.permutation(len(stubs)):
            node, h = stubs[k]
            for _ in range(3):
                pts = _edge_centre(rng, xy[node], h, float(rng.uniform(6.5, 10.0)), STRAIGHT, STRAIGHT, hw)
                if np.hypot(*(pts[-1] - xy[node])) >= 5.0 and _is_clear(pts, node, "?", placed, xy, hw):
                    break
            else:
                continue
            del stubs[k]
            open_junction(pts, node, kind)
            break
        else:
            return None
    for node, h in stubs:  # every other branch is a dead end
        for length in (rng.uniform(5.0, 8.0), rng.uniform(4.0, 5.0)):
            pts = _edge_centre(rng, xy[node], h, float(length), STRAIGHT, 0.0, hw)
            if _is_clear(pts, node, "?", placed, xy, hw):
                break
        else:
            return None
        add_edge(node, add_node(pts[-1], "leaf"), pts)
    return g


def make_network(rng: np.random.Generator, kind: str | None = None, junctions: int | None = None,
                 half_width: float | None = None) -> SimNetwork:
    """A random tree-shaped road network (see the module docstring); deterministic for a given ``rng`` state.

    ``kind``: "T", "cross" or "fork" (every junction of that kind), "curve" (one curvy road, no junction) or
    None (each junction's kind drawn at random). ``junctions``: how many (2-4 at random when None).
    ``half_width``: lane half-width in metres (0.35-0.5 at random when None).
    """
    if kind is not None and kind not in KINDS:
        raise DataError(f"network kind must be one of {', '.join(KINDS)}, got: {kind!r}")
    hw = float(rng.uniform(0.35, 0.5)) if half_width is None else float(half_width)
    if kind == "curve":
        count = 0
    else:
        count = int(rng.integers(2, 5)) if junctions is None else int(junctions)
    for _ in range(200):
        kinds = [kind if kind is not None else str(JUNCTION_KINDS[rng.integers(len(JUNCTION_KINDS))]) for _ in range(count)]
        g = _try_network(rng, kinds, hw)
        if g is not None:
            return SimNetwork(graph=g, root="n0", half_width=hw, kind=kind)
    raise RuntimeError("no network fitted after 200 tries")  # not seen in practice: a bug, not a user error


# ------------------------------------------------------------------------------------------------------ routes


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _oriented(g: nx.Graph, u: str, v: str) -> np.ndarray:
    """Centre line of edge u-v, ordered from u to v."""
    d = g.edges[u, v]
    return d["points"] if d["a"] == u else d["points"][::-1]


def _leaving_heading(g: nx.Graph, node: str, other: str) -> float:
    """Heading (rad) of edge node-other as it leaves ``node``."""
    p = _oriented(g, node, other)
    d = p[min(4, len(p) - 1)] - p[0]
    return math.atan2(d[1], d[0])


def _drive_line(centre: np.ndarray, hw: float) -> np.ndarray:
    """float64 (N, 2) right-lane centre: ``hw`` to the right of ``centre`` (in its direction of travel)."""
    t = np.gradient(centre, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return centre + hw * np.stack([t[:, 1], -t[:, 0]], 1)


def _options(g: nx.Graph, node: str, came_from: str) -> dict[str, str]:
    """{neighbour: "left" | "straight" | "right"} for the roads leaving ``node`` when arriving from
    ``came_from``: by the turn angle (within 20 degrees = straight); two the same are told apart by order."""
    h_in = _wrap(_leaving_heading(g, node, came_from) + math.pi)
    turns = sorted(((_wrap(_leaving_heading(g, node, n) - h_in), n) for n in g.neighbors(node) if n != came_from),
                   reverse=True)  # leftmost first
    names = ["straight" if abs(t) < math.radians(20) else ("left" if t > 0 else "right") for t, _ in turns]
    if len(set(names)) < len(names):
        names = {1: ["straight"], 2: ["left", "right"], 3: ["left", "straight", "right"]}.get(
            len(names), [f"branch{i}" for i in range(len(names))])
    return {n: name for (_, n), name in zip(turns, names)}


def _turn(d_in: np.ndarray, d_out: np.ndarray, hw: float, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join the driving line ``d_in`` (ending at a junction) to ``d_out`` (leaving it) with a circular arc.

    Returns (the part of d_in kept, the arc points, the part of d_out kept). Both lines are straight for
    :data:`STRAIGHT` metres at the junction, so the arc is tangent to both.
    """
    p_in, p_out = d_in[-1], d_out[0]
    u_in = d_in[-1] - d_in[-5]
    u_in /= np.linalg.norm(u_in)
    u_out = d_out[4] - d_out[0]
    u_out /= np.linalg.norm(u_out)
    h_in, h_out = math.atan2(u_in[1], u_in[0]), math.atan2(u_out[1], u_out[0])
    delta = _wrap(h_out - h_in)
    if abs(delta) < 1e-3:
        return d_in, np.empty((0, 2)), d_out
    cross = u_in[0] * u_out[1] - u_in[1] * u_out[0]
    w = p_out - p_in
    t = (w[0] * u_out[1] - w[1] * u_out[0]) / cross  # the lines meet at X = p_in + t u_in = p_out + t2 u_out
    x = p_in + t * u_in
    t2 = float(np.dot(x - p_out, u_out))
    d_max = min(STRAIGHT + t, STRAIGHT - t2) - 2 * DS
    if kind == "fork" and abs(delta) < math.radians(60):
        r_want = R_FORK
    else:
        r_want = R_RIGHT if delta < 0 else R_RIGHT + 2 * hw
    tan_half = math.tan(abs(delta) / 2)
    r = min(r_want, d_max / tan_half)
    if r < 0.7:  # tighter than the car can follow (its minimum radius is about 0.56 m)
        raise DataError(f"a turn of {math.degrees(abs(delta)):.0f} degrees is too sharp to drive")
    d = r * tan_half
    t1 = x - d * u_in
    t2p = x + d * u_out
    keep_in = d_in[(d_in - p_in) @ u_in < t - d - 1e-9]
    keep_out = d_out[(d_out - p_out) @ u_out > t2 + d + 1e-9]
    side = 1.0 if delta > 0 else -1.0
    normal = side * np.array([-u_in[1], u_in[0]])
    c = t1 + r * normal
    a0 = math.atan2(t1[1] - c[1], t1[0] - c[0])
    steps = max(math.ceil(r * abs(delta) / DS), 2)
    ang = a0 + np.linspace(0.0, delta, steps + 1)
    arc = c + r * np.stack([np.cos(ang), np.sin(ang)], 1)
    arc[0], arc[-1] = t1, t2p
    return keep_in, arc, keep_out


def _resample(points: np.ndarray, ds: float) -> np.ndarray:
    seg = np.hypot(*np.diff(points, axis=0).T)
    keep = np.concatenate([[True], seg > 1e-9])
    points = points[keep]
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    q = np.arange(max(math.floor(s[-1] / ds + 1e-9), 1) + 1) * ds  # exactly ds apart (the rest < ds dropped)
    return np.stack([np.interp(q, s, points[:, 0]), np.interp(q, s, points[:, 1])], 1)


def plan_route(net: SimNetwork, rng: np.random.Generator | None = None, start: str | None = None,
               goal: str | None = None) -> Route:
    """The route from ``start`` (default the network's start node) to ``goal`` (a node id) as an
    :class:`edgecnn.navmap.Route`.

    Without ``goal``: with ``rng``, the dead end reached by taking a branch uniformly at random at each junction
    (so over many routes every branch is taken about equally often); without, the farthest dead end. The path is
    networkx's shortest path; ``points`` is the driving line (float64 (M, 2), one point every :data:`DS` m,
    rounded to the millimetre), ``junctions`` one dict per junction passed: node, kind, ``s`` (arc length of the
    point of ``points`` nearest the junction centre, m), branch taken and the options there (left to right).
    Raises DataError for an unknown node or a route that cannot be driven.
    """
    g = net.graph
    start = net.root if start is None else start
    for name, n in (("start", start), ("goal", goal)):
        if n is not None and n not in g:
            raise DataError(f"route {name} {n!r} is not a node of the network (nodes: {', '.join(g.nodes)})")
    if goal is None:
        if rng is None:
            lengths = nx.single_source_dijkstra_path_length(g, start, weight="length")
            goal = max((n for n in net.leaves if n != start), key=lambda n: lengths[n], default=None)
        else:
            goal = _random_walk(net, rng, start)
    if goal is None or goal == start:
        raise DataError(f"route from {start} to {goal}: start and goal must be different nodes")
    path = nx.shortest_path(g, start, goal, weight="length")
    return _route_along(net, path)


def _random_walk(net: SimNetwork, rng: np.random.Generator, start: str) -> str:
    g = net.graph
    prev, node = None, start
    while True:
        nxt = sorted(n for n in g.neighbors(node) if n != prev)
        if not nxt:
            return node
        prev, node = node, nxt[int(rng.integers(len(nxt)))]


def balanced_routes(net: SimNetwork, count: int, rng: np.random.Generator) -> list[Route]:
    """``count`` routes from the start node, choosing at each junction the branch taken least often so far
    (ties at random), so that every junction's branches are taken about equally often across the routes."""
    g = net.graph
    taken: dict[str, dict[str, int]] = {}
    routes = []
    for _ in range(count):
        path = [net.root]
        prev = None
        while True:
            node = path[-1]
            nxt = sorted(n for n in g.neighbors(node) if n != prev)
            if not nxt:
                break
            if len(nxt) > 1:
                counts = taken.setdefault(node, dict.fromkeys(nxt, 0))
                low = min(counts.values())
                choice = [n for n in nxt if counts[n] == low]
                pick = choice[int(rng.integers(len(choice)))]
                counts[pick] += 1
            else:
                pick = nxt[0]
            prev = node
            path.append(pick)
        routes.append(_route_along(net, path))
    return routes


def branch_routes(net: SimNetwork, route: Route, node: str) -> dict[str, Route]:
    """Per branch of the junction ``node`` on ``route``: a route that follows ``route`` up to ``node`` and leaves
    it by that branch (``{"left": Route, "right": Route}`` for a T). The route's own branch gives a route equal to
    ``route`` up to the end of the branch's road; every one of them has the same arc lengths up to the
    junction's approach. ValueError when ``node`` is not a junction of ``route``."""
    path = list(route.nodes)
    if node not in path[1:-1] or net.graph.degree(node) <= 2:
        raise ValueError(f"{node} is not a junction on this route")
    i = path.index(node)
    return {name: _route_along(net, path[: i + 1] + [nbr])
            for nbr, name in _options(net.graph, node, path[i - 1]).items()}


def _route_along(net: SimNetwork, path: list[str]) -> Route:
    g = net.graph
    hw = net.half_width
    lines = [_drive_line(_oriented(g, u, v), hw) for u, v in itertools.pairwise(path)]
    for u, v in itertools.pairwise(path):
        if not g.has_edge(u, v):  # shortest_path never gives this; a guard for hand-made paths
            raise DataError(f"{u} -> {v}: no road joins them")
    pieces: list[np.ndarray] = []
    cur = lines[0]
    info = []
    for i, node in enumerate(path[1:-1], start=1):
        kind = g.nodes[node]["kind"]
        nxt = lines[i]
        kept, arc, nxt = _turn(cur, nxt, hw, kind)
        if g.degree(node) > 2:
            opts = _options(g, node, path[i - 1])
            order = [n for n in opts]  # leftmost first
            info.append({"node": node, "kind": kind, "branch": opts[path[i + 1]],
                         "options": [opts[n] for n in order], "arc": (arc[0], arc[-1]) if len(arc) else None})
        pieces += [kept, arc]
        cur = nxt
    pieces.append(cur)
    pts = np.round(_resample(np.vstack([p for p in pieces if len(p)]), DS), 3)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    junctions = []
    for j in info:
        c = np.asarray(g.nodes[j["node"]]["xy"])
        k = int(np.argmin(np.hypot(*(pts - c).T)))
        near = np.flatnonzero(np.abs(s - s[k]) <= STRAIGHT + 2 * R_FORK)  # this junction's stretch of the route
        turn = [None, None] if j["arc"] is None else [
            round(float(s[near[int(np.argmin(np.hypot(*(pts[near] - end).T)))]]), 3) for end in j["arc"]]
        junctions.append({"node": j["node"], "kind": j["kind"], "s": round(float(s[k]), 3), "branch": j["branch"],
                          "options": j["options"], "turn_in": turn[0], "turn_out": turn[1]})
    return Route(start=path[0], goal=path[-1], nodes=tuple(path), points=pts, junctions=tuple(junctions))


def route_road(route: Route, half_width: float, tail: float = TAIL) -> Road:
    """The route's driving line as a :class:`~edgecnn.sim.road.Road` (samples every :data:`DS` m; drivable
    ``length`` = the route's length; ``tail`` metres of straight line beyond the goal for look-ahead)."""
    pts = np.asarray(route.points, float)
    end_dir = pts[-1] - pts[max(len(pts) - 5, 0)]
    end_dir /= np.linalg.norm(end_dir)
    length = float(np.hypot(*np.diff(pts, axis=0).T).sum())
    ext = pts[-1] + np.outer(np.arange(1, round(tail / DS) + 1) * DS, end_dir)
    xy = _resample(np.vstack([pts, ext]), DS)
    d = np.gradient(xy, axis=0)
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    curvature = np.gradient(heading) / DS
    return Road(xy=xy, heading=heading, curvature=curvature, ds=DS, half_width=float(half_width), length=length)


def junction_at(route: Route, s: float) -> dict | None:
    """The junction of ``route`` whose zone (:data:`ZONE_BEFORE` m before its centre to :data:`ZONE_AFTER` m
    after) holds arc length ``s`` (m), or None."""
    for j in route.junctions:
        if j["s"] - ZONE_BEFORE <= s <= j["s"] + ZONE_AFTER:
            return j
    return None
