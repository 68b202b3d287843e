"""IDM traffic along lane paths, vectorised over vehicles: leaders through the lane graph, red lights,
merge yielding, pedestrians; the ego (vehicle 0) also changes lanes with a quintic lateral profile."""

from __future__ import annotations

import math

import numpy as np

from scenes.drive import CURRENT_INDEX, NUM_STEPS, SIM_DT
from scenes.synthetic import polyline as pl
from scenes.synthetic.intersection import AMBER_STEPS
from scenes.synthetic.paths import PathTable
from scenes.synthetic.pedestrians import Walkers

WARMUP = 30  # [steps] simulated before index 0 (initial speeds are already near equilibrium)
T_SIM = WARMUP + NUM_STEPS + 2  # two extra steps: central differences of central differences at the end
MAX_DECEL = 9.0  # [m/s^2]
B_STOP = 4.0  # [m/s^2] a vehicle stops for a light / crosswalk only if it can at this deceleration
EGO_STATIC_GAP = 8.0  # [m] the ego stops this far behind a static obstacle, room to steer round it
# the ego (expert) drives like a careful human: comfortable, jerk-limited commands, hard braking only as a
# last resort; it slows before yield points and crosswalks in use so that it can stop there comfortably
EGO_B_COMF = 3.2  # [m/s^2] the ego's largest deceleration in normal driving
EGO_JERK = 3.6  # [m/s^3] the ego's largest jerk in normal driving
EGO_B_EMERGENCY = 3.4  # [m/s^2] kinematic deceleration need above which the ego brakes as hard as needed
EGO_B_ANTICIPATE = 1.6  # [m/s^2] deceleration the ego plans with when slowing for a yield point / crosswalk
EGO_V_YIELD = 4.0  # [m/s] speed the ego slows to before an uncommitted yield point
EGO_V_CROSSWALK = 2.5  # [m/s] speed the ego slows to before a crosswalk with pedestrians about to cross
B_MERGE = 2.5  # [m/s^2] a yielding vehicle merges only if the vehicle behind need not brake harder than this


def idm(v, v0, gap, dv, a, b, T, s0):
    """IDM acceleration [m/s^2]: speed v, desired v0 [m/s], gap [m] (inf: free), approach rate dv [m/s]."""
    s_star = s0 + np.maximum(0.0, v * T + v * dv / (2.0 * np.sqrt(a * b)))
    inter = np.where(np.isfinite(gap), (s_star / np.maximum(gap, 0.05)) ** 2, 0.0)
    return a * (1.0 - (v / np.maximum(v0, 0.1)) ** 4 - inter)


def idm1(v: float, v0: float, gap: float, dv: float, a: float, b: float, T: float, s0: float) -> float:
    """Scalar `idm`."""
    s_star = s0 + max(0.0, v * T + v * dv / (2.0 * math.sqrt(a * b)))
    inter = (s_star / max(gap, 0.05)) ** 2 if math.isfinite(gap) else 0.0
    return a * (1.0 - (v / max(v0, 0.1)) ** 4 - inter)


class Fleet:
    """Vehicle pool arrays (N,): path, s [m] (box centre station), v [m/s], half length [m], IDM params."""

    def __init__(self, rows: list[dict]):
        for key in rows[0]:
            setattr(self, key, np.array([r[key] for r in rows]))
        self.active = np.zeros(len(rows), bool)
        self.done = np.zeros(len(rows), bool)


class Simulation:
    """Runs T_SIM steps; records path, station, speed, activity per step and the ego's lateral offset."""

    def __init__(self, table: PathTable, fleet: Fleet, walkers: Walkers, red: np.ndarray | None,
                 ped_green: np.ndarray | None, neighbours: dict, lane_change: bool, side_order: tuple[int, int]):
        self.tab, self.f, self.w = table, fleet, walkers
        self.red = red
        self.ped_green = ped_green
        self.neighbours, self.lane_change, self.side_order = neighbours, lane_change, side_order
        n = len(fleet.s)
        self.h_path = np.zeros((T_SIM, n), np.int64)
        self.h_s = np.zeros((T_SIM, n))
        self.h_v = np.zeros((T_SIM, n))
        self.h_active = np.zeros((T_SIM, n), bool)
        self.ego_d = np.zeros(T_SIM)  # lateral offset [m] (left +) from the ego's path
        self.ego_dd = np.zeros(T_SIM)  # d offset / d station
        self.ped_state = [np.zeros((T_SIM, walkers.count, 2)), np.zeros((T_SIM, walkers.count)),
                          np.zeros((T_SIM, walkers.count, 2))]
        self.lc: dict | None = None
        self.lane_changed = False
        self.ego_a = 0.0  # [m/s^2] the ego's last commanded acceleration
        self.ego_emergency = 0  # steps on which the ego braked beyond its comfort limits

    def run(self) -> None:
        f = self.f
        f.active[:] = f.spawn == 0
        for k in range(T_SIM):
            self._record(k)
            self._step(k)

    def _record(self, k: int) -> None:
        f = self.f
        self.h_path[k], self.h_s[k], self.h_v[k], self.h_active[k] = f.path, f.s, f.v, f.active
        if self.lc is not None:
            x = (f.s[0] - self.lc["s0"]) / self.lc["D"]
            self.ego_d[k] = self.lc["d0"] * (1.0 - pl.smoothstep(x))
            self.ego_dd[k] = -self.lc["d0"] * pl.smoothstep_slope(x) / self.lc["D"]
        if self.w.count == 0:
            return
        xy, h, v = self.w.state()
        self.ped_state[0][k], self.ped_state[1][k], self.ped_state[2][k] = xy, h, v

    def _registrations(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lanes (n, 4) and lane stations (n, 4) where each live vehicle is seen by others; kind 2 = merge."""
        tab, f = self.tab, self.f
        row, s_in = tab.locate(f.path[idx], f.s[idx])
        sentinel = len(tab.lane_len) - 1
        lanes = np.full((len(idx), 4), sentinel)
        st = np.zeros((len(idx), 4))
        lanes[:, 0], st[:, 0] = row, s_in
        pred = tab.pred[row]
        near = (s_in < 15.0) & (pred != sentinel)
        lanes[:, 1] = np.where(near, pred, sentinel)
        st[:, 1] = np.where(near, tab.lane_len[pred] + s_in, 0.0)
        part = tab.partner[row]
        lanes[:, 2] = part
        st[:, 2] = np.where(part != sentinel, tab.lane_len[part] - (tab.lane_len[row] - s_in), 0.0)
        if self.lc is not None and idx[0] == 0 and (f.s[0] - self.lc["s0"]) < 0.6 * self.lc["D"]:
            s_old = f.s[0] - self.lc["s0"] + self.lc["s_old"]
            r_old, s_in_old = tab.locate(np.array([self.lc["old"]]), np.array([s_old]))
            lanes[0, 3], st[0, 3] = r_old[0], s_in_old[0]
        return lanes, st, row

    def _step(self, k: int) -> None:
        tab, f = self.tab, self.f
        idx = np.flatnonzero((f.active | (f.spawn <= k)) & ~f.done)
        if idx.size == 0:
            return
        lanes, st, row = self._registrations(idx)
        on_yield = np.isfinite(tab.yield_pt[row])
        s_in = st[:, 0]
        committed = ~on_yield | (s_in + f.half[idx] >= tab.yield_pt[row])
        act = f.active[idx]
        half = f.half[idx]
        ds = tab.offset[f.path[idx]][:, lanes]  # (n, n, 4) station of vehicle j (registration r) on i's path
        ds += st[None]
        ds -= f.s[idx, None, None]
        bad = ~(ds > 0)  # NaN (not on the path) and behind
        bad |= ~act[None, :, None]
        bad[np.arange(len(idx)), np.arange(len(idx))] = True
        bad[:, :, 2] |= ~(committed[None, :] | on_yield[:, None])
        gap = np.where(bad, np.inf, ds).min(2) - half[None, :] - half[:, None]
        lead = np.argmin(gap, axis=1)
        g_lead = gap[np.arange(len(idx)), lead]
        v, v_lead = f.v[idx], f.v[idx][lead]
        vmax = tab.vmax[f.path[idx], np.clip(f.s[idx].astype(np.int64), 0, tab.vmax.shape[1] - 1)]
        v0 = np.minimum(vmax * f.factor[idx], f.cap[idx])
        s0 = np.where((idx == 0) & f.static[idx][lead] & np.isfinite(g_lead), EGO_STATIC_GAP, f.s0[idx])
        acc = idm(v, v0, g_lead, v - v_lead, f.a[idx], f.b[idx], f.T[idx], s0)
        front = f.s[idx] + f.half[idx]
        stop = np.full(len(idx), np.inf)
        li = tab.light[f.path[idx]]
        if self.red is not None:
            red_now = np.where(li >= 0, self.red[li, k] | self.red[li, min(k + AMBER_STEPS, self.red.shape[1] - 1)],
                               False)
            dist = tab.stop_s[f.path[idx]] - front
            ok = dist - 0.5 > v**2 / (2 * B_STOP)
            if idx[0] == 0 and li[0] >= 0 and not self.red[li[0], k]:
                ok[0] = dist[0] - 0.5 > v[0] ** 2 / (2 * EGO_B_COMF * 0.85)  # amber: the ego stops comfortably or goes
            stop = np.where(red_now & (dist > 0.3) & ok, dist - 0.5, stop)
        # merge yielding: wait at the yield point unless the priority lane has a gap
        wait = on_yield & ~committed
        if wait.any():
            conflict = (lanes[None, :, 2] != len(tab.lane_len) - 1) & ~on_yield[None, :] & act[None, :]
            dsm = ds[:, :, 2]
            back = 7.0 + 0.8 * v[None, :] + 1.5 * np.maximum(v[None, :] - v[:, None], 0.0)
            fwd = 6.0 + 0.3 * v[:, None]
            close = conflict & np.isfinite(dsm) & (dsm > -back) & (dsm < fwd)
            # ... and only if the priority-lane vehicle behind would not have to brake hard for the merger
            behind = conflict & (dsm <= -back) & (dsm > -150.0) & wait[:, None]
            if behind.any():
                i, j = np.nonzero(behind)
                need = idm(v[j], v[j] + 1.0, np.maximum(-dsm[i, j] - half[i] - half[j], 0.5), v[j] - v[i],
                           f.a[idx[j]], f.b[idx[j]], f.T[idx[j]], f.s0[idx[j]])
                close[i[need < -B_MERGE], j[need < -B_MERGE]] = True
            bad = close.any(1) & wait
            dist = tab.yield_s[f.path[idx]] - front
            stop = np.where(bad & (dist > -0.5), np.minimum(stop, np.maximum(dist, 0.0)), stop)
        t_now = (k - WARMUP - CURRENT_INDEX) * SIM_DT
        stop = np.minimum(stop, self._crosswalk_stops(idx, front, v, t_now))
        ego = idx[0] == 0 and act[0]
        if ego:
            v0[0] = min(v0[0], self._ego_speed_cap(float(front[0]), bool(committed[0]), t_now))
            acc[0] = idm1(float(v[0]), float(v0[0]), float(g_lead[0]), float(v[0] - v_lead[0]), float(f.a[0]),
                          float(f.b[0]), float(f.T[0]), float(s0[0]))
        acc = np.minimum(acc, idm(v, v0, stop, v, f.a[idx], f.b[idx], f.T[idx], 1.0))
        acc = np.clip(acc, -MAX_DECEL, f.a[idx])
        if ego:
            acc[0] = self._ego_command(float(acc[0]), float(v[0]), float(g_lead[0]), float(v_lead[0]),
                                       float(stop[0]))
        # spawning: pending vehicles enter when there is room
        pend = ~act
        if pend.any():
            room = g_lead > np.maximum(10.0, 1.2 * v)
            f.active[idx[pend & room]] = True
        if self.lane_change and idx[0] == 0 and self.lc is None:
            self._try_lane_change(idx, lanes, st, lead, g_lead, v0)
        moving = f.active[idx] & ~f.static[idx] & act
        v_new = np.maximum(v + acc * SIM_DT, 0.0)
        f.s[idx] = np.where(moving, f.s[idx] + 0.5 * (v + v_new) * SIM_DT, f.s[idx])
        f.v[idx] = np.where(moving, v_new, f.v[idx])
        gone = f.s[idx] > tab.length[f.path[idx]] - 0.5
        f.active[idx[gone]] = False
        f.done[idx[gone]] = True
        if self.lc is not None and f.s[0] - self.lc["s0"] >= self.lc["D"]:
            self.lc = None
        self._walk(k, idx, front, v)

    def _ego_speed_cap(self, front: float, committed: bool, t: float) -> float:
        """Desired speed [m/s] that lets the ego stop comfortably at an uncommitted yield point, or at a
        crosswalk where pedestrians are waiting, walking or about to step out."""
        tab, p = self.tab, int(self.f.path[0])
        cap = np.inf
        if not committed:
            dist = float(tab.yield_s[p]) - front
            if math.isfinite(dist) and dist > -0.5:
                cap = math.sqrt(EGO_V_YIELD**2 + 2.0 * EGO_B_ANTICIPATE * max(dist - 1.0, 0.0))
        if self.w.count and tab.cw_id[p, 0] >= 0:
            w = self.w
            soon = (w.walking & (w.u <= w.length[w.crossing])) | (~w.walking & (t >= w.start - 3.0))
            if soon.any():
                busy = set(w.crossing[soon].tolist())
                for c, c_in in zip(tab.cw_id[p].tolist(), tab.cw_in[p].tolist()):
                    if c >= 0 and c in busy and c_in - front > -0.5:
                        cap = min(cap, math.sqrt(EGO_V_CROSSWALK**2 + 2.0 * EGO_B_ANTICIPATE
                                                 * max(c_in - front - 2.0, 0.0)))
        return cap

    def _ego_command(self, a_des: float, v: float, gap: float, v_lead: float, stop: float) -> float:
        """The ego's acceleration [m/s^2]: the IDM demand bounded to comfortable values and jerk, unless the
        kinematic deceleration needed to stay clear of the leader / stop point exceeds EGO_B_EMERGENCY."""
        a_prev = self.ego_a
        b_need = 0.0
        if math.isfinite(gap) and v > v_lead:
            b_need = (v - v_lead) ** 2 / (2.0 * max(gap - 1.0, 0.1))
        if math.isfinite(stop):
            b_need = max(b_need, v * v / (2.0 * max(stop - 0.3, 0.1)))
        # braking eases off before standstill (a >= -sqrt(2 j v)) so that stopping adds no jerk
        v_next = max(v + a_prev * SIM_DT, 0.0)
        lo = max(-EGO_B_COMF, a_prev - EGO_JERK * SIM_DT, -math.sqrt(1.4 * EGO_JERK * v_next))
        a = min(max(a_des, lo), max(a_prev + EGO_JERK * SIM_DT, -EGO_B_COMF), float(self.f.a[0]))
        if b_need > EGO_B_EMERGENCY and a_des < a:
            a = max(a_des, -MAX_DECEL)  # last resort
            self.ego_emergency += 1
        self.ego_a = float(a)
        return float(a)

    def _crosswalk_stops(self, idx: np.ndarray, front: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
        tab = self.tab
        if self.w.count == 0:
            return np.full(len(idx), np.inf)
        peds = self.w.positions_from_a()
        p = self.f.path[idx]
        cid, u = tab.cw_id[p], tab.cw_u[p]  # (n, C)
        near = np.abs(peds[None, None, :] - u[..., None]) < 4.5
        same = cid[..., None] == self.w.crossing[None, None, :]
        blocked = (same & near).any(-1) & (cid >= 0)
        waiting = (same & self.w.ready(t)[None, None, :]).any(-1) & (cid >= 0)  # zebra: yield to waiting
        dist = tab.cw_in[p] - front[:, None]
        can = (blocked & (dist > -0.5) & (dist - 1.5 > v[:, None] ** 2 / (2 * 7.0))) | (
            waiting & (dist - 1.5 > v[:, None] ** 2 / (2 * 3.0)))
        if idx[0] == 0:  # the ego also yields to pedestrians walking towards its lane, while it can stop gently
            ahead = (u[0][:, None] - peds[None, :]) * np.where(self.w.side == 0, 1.0, -1.0)[None, :]
            coming = (same[0] & (ahead > -4.5) & (ahead < 12.0)).any(-1) & (cid[0] >= 0)
            can[0] |= coming & (dist[0] > -0.5) & (dist[0] - 1.5 > v[0] ** 2 / (2 * EGO_B_COMF * 0.85))
        return np.where(can, np.maximum(dist - 1.5, 0.0), np.inf).min(1)

    def _walk(self, k: int, idx: np.ndarray, front: np.ndarray, v: np.ndarray) -> None:
        if self.w.count == 0:
            return
        tab = self.tab
        p = self.f.path[idx]
        dist = tab.cw_in[p] - front[:, None]
        rear = front - 2 * self.f.half[idx]
        live = self.f.active[idx][:, None] & (tab.cw_id[p] >= 0)
        coming = (dist > 0) & (dist < v[:, None] ** 2 / (2 * 2.5) + 5.0) & (v[:, None] > 0.5)
        on = (dist <= 0) & (rear[:, None] < tab.cw_out[p] + 0.5)
        hit = live & (coming | on)
        unsafe = np.zeros(len(self.w.crossings), bool)
        unsafe[tab.cw_id[p][hit]] = True
        green = True if self.ped_green is None else bool(self.ped_green[min(k, len(self.ped_green) - 1)])
        t = (k - WARMUP - CURRENT_INDEX) * SIM_DT
        self.w.step(t, SIM_DT, unsafe, green)

    def _try_lane_change(self, idx, lanes, st, lead, g_lead, v0) -> None:
        f, tab = self.f, self.tab
        j = lead[0]
        if not np.isfinite(g_lead[0]) or g_lead[0] > 60.0:
            return
        blocker_static = bool(f.static[idx[j]])
        slow = f.v[idx[j]] < 0.7 * v0[0] and g_lead[0] < 40.0
        if not (blocker_static or slow):
            return
        ve = f.v[0]
        for side in self.side_order:
            target = self.neighbours.get(int(f.path[0]), (None, None))[side]
            if target is None:
                continue
            here, _, _ = tab.sample(np.array([f.path[0]]), np.array([f.s[0]]))
            n_t = int(np.ceil(tab.length[target])) + 1
            s_t, d0 = pl.project(here, tab.xy[target, :n_t])
            ds = tab.offset[target][lanes] + st - s_t[0]
            ds[0] = np.nan
            gaps = np.abs(ds) - f.half[0] - f.half[idx][:, None]
            ahead = np.where(np.isfinite(ds) & (ds > 0) & f.active[idx][:, None], gaps, np.inf)
            behind = np.where(np.isfinite(ds) & (ds <= 0) & f.active[idx][:, None], gaps, np.inf)
            g_f, g_r = ahead.min(), behind.min()
            if g_f < max(6.0, 0.8 * ve) or g_r < 4.0:
                continue
            jf = idx[np.argmin(ahead.min(1))]
            if not blocker_static and not (f.v[jf] > f.v[idx[j]] + 1.5 or g_f > 40.0):
                continue
            if f.static[jf] and g_f < 50.0:
                continue
            if np.isfinite(g_r):
                jr = idx[np.argmin(behind.min(1))]
                if idm(f.v[jr], 15.0, g_r, f.v[jr] - ve, f.a[jr], f.b[jr], f.T[jr], f.s0[jr]) < -3.0:
                    continue
            D = float(np.clip(4.0 * ve, 16.0, 45.0))
            if blocker_static:
                D = min(D, (g_lead[0] - 1.0) / 0.75)
                if D < 10.0:
                    continue
            self.lc = {"s0": float(s_t[0]), "D": D, "d0": float(d0[0]), "old": int(f.path[0]),
                       "s_old": float(f.s[0])}
            f.path[0], f.s[0] = target, s_t[0]
            self.lane_changed = True
            return
