"""IDM traffic along lane paths, vectorised over vehicles: leaders through the lane graph, red lights,
merge yielding, pedestrians; the ego (vehicle 0) also changes lanes with a quintic lateral profile."""

from __future__ import annotations

import math

import numpy as np

from scenes.drive import CURRENT_INDEX, NUM_STEPS, SIM_DT
from scenes.idm import braking_term, free_road_acceleration, idm_acceleration
from scenes.synthetic import polyline as pl
from scenes.synthetic.intersection import AMBER_STEPS
from scenes.synthetic.paths import PathTable
from scenes.synthetic.pedestrians import Walkers

WARMUP = 30  # [steps] simulated before index 0 (initial speeds are already near equilibrium)
T_SIM = WARMUP + NUM_STEPS + 2  # two extra steps: central differences of central differences at the end


def simulated_steps(log_steps: int) -> int:
    """Steps the traffic simulation runs for a log of `log_steps` steps (T_SIM for a DriveScene)."""
    return WARMUP + log_steps + 2
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
    """Treiber's IDM acceleration [m/s^2] (`scenes.idm`): speed v, desired v0 [m/s], gap [m] (inf: free),
    approach rate dv [m/s], a and b [m/s^2], T [s], s0 [m]."""
    return idm_acceleration(v, v0, gap, dv, a, braking_term(a, b), T, s0)


def idm1(v: float, v0: float, gap: float, dv: float, a: float, b: float, T: float, s0: float) -> float:
    """`idm` of one vehicle, as a float."""
    return float(idm(*(np.float64(x) for x in (v, v0, gap, dv, a, b, T, s0))))


class Fleet:
    """Vehicle pool arrays (N,): path, s [m] (box centre station), v [m/s], half length [m], IDM params."""

    # one array (N,) per key of the rows (set in __init__)
    path: np.ndarray  # path index
    s: np.ndarray  # [m] box centre station
    v: np.ndarray  # [m/s]
    length: np.ndarray  # [m]
    width: np.ndarray  # [m]
    half: np.ndarray  # [m] half length
    a: np.ndarray  # [m/s^2] IDM maximum acceleration
    b: np.ndarray  # [m/s^2] IDM comfortable deceleration
    T: np.ndarray  # [s] IDM time headway
    s0: np.ndarray  # [m] IDM jam distance
    factor: np.ndarray  # desired speed / speed limit
    cap: np.ndarray  # [m/s] desired speed cap
    static: np.ndarray  # bool, parked
    spawn: np.ndarray  # [steps] step at which the vehicle enters
    category: np.ndarray  # AgentCategory

    def __init__(self, rows: list[dict]):
        for key in rows[0]:
            setattr(self, key, np.array([r[key] for r in rows]))
        self.active = np.zeros(len(rows), bool)
        self.done = np.zeros(len(rows), bool)


class _Live:
    """Constants of the live vehicles idx (n,) and of their paths' table rows, gathered once and reused
    while neither idx nor the ego's path changes: IDM parameters (n,), lane starts / rows (n, K), lane
    offsets (n, L + 1), signal and yield stations (n,), crosswalk entries (n, C)."""

    def __init__(self, sim: Simulation, idx: np.ndarray):
        tab, f, w = sim.tab, sim.f, sim.w
        p = f.path[idx]
        self.key = (idx.tobytes(), int(f.path[0]))
        self.n = n = len(idx)
        self.ar = np.arange(n)
        self.ego = bool(idx[0] == 0)
        self.half, self.a, self.T, self.s0 = f.half[idx], f.a[idx], f.T[idx], f.s0[idx]
        self.denom = sim.idm_denom[idx]
        self.factor, self.cap, self.static = f.factor[idx], f.cap[idx], f.static[idx]
        self.moves = ~self.static
        self.start, self.lanes, self.offset = tab.start[p], tab.lanes[p], tab.offset[p]
        self.vbase = p * tab.vmax.shape[1]
        self.light, self.stop_s, self.end = tab.light[p], tab.stop_s[p], tab.length[p] - 0.5
        self.yield_s = tab.yield_s[p]
        if w.count:
            self.cw_id, self.cw_in, self.cw_u = tab.cw_id[p], tab.cw_in[p], tab.cw_u[p]
            self.cw_on = self.cw_id >= 0
            self.cw_out = tab.cw_out[p] + 0.5
            self.same = self.cw_id[..., None] == w.crossing[None, None, :]  # (n, C, W)


class Simulation:
    """Runs `num_steps` steps (default T_SIM); records path, station, speed, activity per step and the ego's
    lateral offset."""

    def __init__(self, table: PathTable, fleet: Fleet, walkers: Walkers, red: np.ndarray | None,
                 ped_green: np.ndarray | None, neighbours: dict, lane_change: bool, side_order: tuple[int, int],
                 num_steps: int = T_SIM):
        self.tab, self.f, self.w = table, fleet, walkers
        self.num_steps = num_steps
        self.red = red
        self.ped_green = ped_green
        self.neighbours, self.lane_change, self.side_order = neighbours, lane_change, side_order
        n = len(fleet.s)
        self.h_path = np.zeros((num_steps, n), np.int64)
        self.h_s = np.zeros((num_steps, n))
        self.h_v = np.zeros((num_steps, n))
        self.h_active = np.zeros((num_steps, n), bool)
        self.ego_d = np.zeros(num_steps)  # lateral offset [m] (left +) from the ego's path
        self.ego_dd = np.zeros(num_steps)  # d offset / d station
        self.ped_u = np.zeros((num_steps, walkers.count))  # pedestrian progress [m] per step
        self.ped_walking = np.zeros((num_steps, walkers.count), bool)
        self.lc: dict | None = None
        self.lane_changed = False
        self.ego_a = 0.0  # [m/s^2] the ego's last commanded acceleration
        self.ego_emergency = 0  # steps on which the ego braked beyond its comfort limits
        # per-scene constants of the step
        self.sentinel = len(table.lane_len) - 1
        self.idm_denom = braking_term(fleet.a, fleet.b)  # (N,) [m/s^2]
        self.has_yield = bool(np.isfinite(table.yield_pt).any())
        self.has_partner = bool((table.partner != self.sentinel).any())
        self.has_pred = table.pred != self.sentinel  # (L + 1,)
        self.pred_len = table.lane_len[table.pred]  # (L + 1,) [m]
        self.partner_len = table.lane_len[table.partner]  # (L + 1,) [m]
        self.vmax_flat = table.vmax.ravel()
        self.ped_sign = np.where(walkers.side == 0, 1.0, -1.0)  # (W,)
        if red is not None:  # (K + 1, T) red now or within AMBER_STEPS; row K (light -1) never red
            last = red.shape[1] - 1
            soon = red | red[:, np.minimum(np.arange(red.shape[1]) + AMBER_STEPS, last)]
            self.red_soon = np.concatenate([soon, np.zeros((1, red.shape[1]), bool)])
        self.live: _Live | None = None

    def run(self) -> None:
        """Simulate `num_steps` steps, recording each."""
        f = self.f
        f.active[:] = f.spawn == 0
        for k in range(self.num_steps):
            self._record(k)
            self._step(k)

    def _record(self, k: int) -> None:
        f = self.f
        self.h_path[k], self.h_s[k], self.h_v[k], self.h_active[k] = f.path, f.s, f.v, f.active
        if self.lc is not None:
            x = (f.s[0] - self.lc["s0"]) / self.lc["D"]
            self.ego_d[k] = self.lc["d0"] * (1.0 - pl.smoothstep(x))
            self.ego_dd[k] = -self.lc["d0"] * pl.smoothstep_slope(x) / self.lc["D"]
        if self.w.count:
            self.ped_u[k], self.ped_walking[k] = self.w.u, self.w.walking

    def _registrations(self, c: _Live, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Lanes (n, R) and lane stations (n, R) where each live vehicle is seen by others, R <= 4: its own
        lane, the merge partner lane (column `slot`, -1 if no lane has one), the predecessor lane near a
        lane start, the ego's old lane early in a lane change; columns that would hold only the sentinel
        are left out. Also the own lane rows (n,)."""
        tab, sentinel = self.tab, self.sentinel
        k = (c.start <= s[:, None]).sum(1) - 1
        np.maximum(k, 0, out=k)
        row = c.lanes[c.ar, k]
        s_in = s - c.start[c.ar, k]
        lanes, st, slot = [row], [s_in], -1
        if self.has_partner:
            part = tab.partner[row]
            slot = len(lanes)
            lanes.append(part)
            st.append(np.where(part != sentinel, self.partner_len[row] - (tab.lane_len[row] - s_in), 0.0))
        near = (s_in < 15.0) & self.has_pred[row]
        if near.any():
            lanes.append(np.where(near, tab.pred[row], sentinel))
            st.append(np.where(near, self.pred_len[row] + s_in, 0.0))
        lc = self.lc
        if lc is not None and c.ego and (s[0] - lc["s0"]) < 0.6 * lc["D"]:
            s_old = s[0] - lc["s0"] + lc["s_old"]
            r_old, s_in_old = tab.locate(np.array([lc["old"]]), np.array([s_old]))
            old_lane, old_st = np.full(c.n, sentinel), np.zeros(c.n)
            old_lane[0], old_st[0] = r_old[0], s_in_old[0]
            lanes.append(old_lane)
            st.append(old_st)
        if len(lanes) == 1:
            return row[:, None], s_in[:, None], row, slot
        lanes_out, st_out = np.empty((c.n, len(lanes)), np.int64), np.empty((c.n, len(lanes)))
        for r, (lane, station) in enumerate(zip(lanes, st)):
            lanes_out[:, r], st_out[:, r] = lane, station
        return lanes_out, st_out, row, slot

    def _step(self, k: int) -> None:
        tab, f = self.tab, self.f
        idx = np.flatnonzero((f.active | (f.spawn <= k)) & ~f.done)
        if idx.size == 0:
            return
        c = self.live
        if c is None or c.key != (idx.tobytes(), int(f.path[0])):
            c = self.live = _Live(self, idx)
        s, v, act = f.s[idx], f.v[idx], f.active[idx]
        half = c.half
        lanes, st, row, slot = self._registrations(c, s)
        if self.has_yield:
            y_pt = tab.yield_pt[row]
            on_yield = np.isfinite(y_pt)
            committed = ~on_yield | (st[:, 0] + half >= y_pt)
        if lanes.shape[1] == 1:  # (n, n) station of vehicle j on i's path
            ds = c.offset[:, row]
            ds += st[:, 0]
            ds -= s[:, None]
            gap = np.where(ds > 0, ds, np.inf)  # NaN (not on the path) and behind: inf
        else:
            ds = c.offset[:, lanes]  # (n, n, R) station of vehicle j (registration r) on i's path
            ds += st[None]
            ds -= s[:, None, None]
            ahead = np.where(ds > 0, ds, np.inf)
            if self.has_yield:
                ahead[:, :, slot][~(committed[None, :] | on_yield[:, None])] = np.inf
            gap = ahead.min(2)
        gap -= half[None, :]
        gap -= half[:, None]
        if not act.all():
            gap[:, ~act] = np.inf
        gap[c.ar, c.ar] = np.inf
        lead = np.argmin(gap, axis=1)
        g_lead = gap[c.ar, lead]
        v_lead = v[lead]
        cell = s.astype(np.int64)
        vmax = self.vmax_flat[c.vbase + np.minimum(np.maximum(cell, 0), tab.vmax.shape[1] - 1)]
        v0 = np.minimum(vmax * c.factor, c.cap)
        s0 = c.s0
        if c.ego and c.static[lead[0]] and math.isfinite(g_lead[0]):
            s0 = s0.copy()
            s0[0] = EGO_STATIC_GAP
        acc = idm_acceleration(v, v0, g_lead, v - v_lead, c.a, c.denom, c.T, s0)
        front = s + half
        stop = np.full(c.n, np.inf)
        if self.red is not None:
            red_now = self.red_soon[c.light, k]
            if red_now.any():
                li = c.light
                dist = c.stop_s - front
                ok = dist - 0.5 > v * v / (2 * B_STOP)
                if c.ego and li[0] >= 0 and not self.red[li[0], k]:
                    ok[0] = dist[0] - 0.5 > v[0] * v[0] / (2 * EGO_B_COMF * 0.85)  # amber: stop comfortably or go
                stop = np.where(red_now & (dist > 0.3) & ok, dist - 0.5, stop)
        # merge yielding: wait at the yield point unless the priority lane has a gap
        if self.has_yield and (wait := on_yield & ~committed).any():
            conflict = (lanes[None, :, slot] != self.sentinel) & ~on_yield[None, :] & act[None, :]
            dsm = ds[:, :, slot]
            back = 7.0 + 0.8 * v[None, :] + 1.5 * np.maximum(v[None, :] - v[:, None], 0.0)
            fwd = 6.0 + 0.3 * v[:, None]
            close = conflict & np.isfinite(dsm) & (dsm > -back) & (dsm < fwd)
            # ... and only if the priority-lane vehicle behind would not have to brake hard for the merger
            behind = conflict & (dsm <= -back) & (dsm > -150.0) & wait[:, None]
            if behind.any():
                i, j = np.nonzero(behind)
                need = idm_acceleration(v[j], v[j] + 1.0, np.maximum(-dsm[i, j] - half[i] - half[j], 0.5),
                                        v[j] - v[i], c.a[j], c.denom[j], c.T[j], c.s0[j])
                close[i[need < -B_MERGE], j[need < -B_MERGE]] = True
            bad = close.any(1) & wait
            dist = c.yield_s - front
            stop = np.where(bad & (dist > -0.5), np.minimum(stop, np.maximum(dist, 0.0)), stop)
        t_now = (k - WARMUP - CURRENT_INDEX) * SIM_DT
        if self.w.count:
            cross = self._crosswalk_stops(c, front, v, t_now)
            if cross is not None:
                stop = np.minimum(stop, cross)
        ego = c.ego and act[0]
        if ego:
            committed0 = bool(committed[0]) if self.has_yield else True
            v0[0] = min(v0[0], self._ego_speed_cap(float(front[0]), committed0, t_now))
            acc[0] = idm1(float(v[0]), float(v0[0]), float(g_lead[0]), float(v[0] - v_lead[0]), float(f.a[0]),
                          float(f.b[0]), float(f.T[0]), float(s0[0]))
        if np.isfinite(stop).any():
            acc = np.minimum(acc, idm_acceleration(v, v0, stop, v, c.a, c.denom, c.T, 1.0))
        elif ego:  # free road (the IDM's interaction term is 0): only the ego's capped v0 can lower acc
            acc[:1] = np.minimum(acc[:1], free_road_acceleration(v[:1], v0[:1], c.a[:1]))
        acc = np.minimum(np.maximum(acc, -MAX_DECEL), c.a)
        if ego:
            acc[0] = self._ego_command(float(acc[0]), float(v[0]), float(g_lead[0]), float(v_lead[0]),
                                       float(stop[0]))
        # spawning: pending vehicles enter when there is room
        pend = ~act
        if pend.any():
            room = g_lead > np.maximum(10.0, 1.2 * v)
            f.active[idx[pend & room]] = True
        if self.lane_change and c.ego and self.lc is None and self._try_lane_change(idx, lanes, st, lead,
                                                                                    g_lead, v0):
            s = f.s[idx]
            c = self.live = _Live(self, idx)
        moving = act & c.moves
        v_new = np.maximum(v + acc * SIM_DT, 0.0)
        s_new = np.where(moving, s + 0.5 * (v + v_new) * SIM_DT, s)
        f.s[idx] = s_new
        f.v[idx] = np.where(moving, v_new, v)
        gone = s_new > c.end
        if gone.any():
            f.active[idx[gone]] = False
            f.done[idx[gone]] = True
        if self.lc is not None and f.s[0] - self.lc["s0"] >= self.lc["D"]:
            self.lc = None
        if self.w.count:
            self._walk(k, idx, c, front, v)

    def _ego_speed_cap(self, front: float, committed: bool, t: float) -> float:
        """Desired speed [m/s] that lets the ego stop comfortably at an uncommitted yield point, or at a
        crosswalk where pedestrians are waiting, walking or about to step out."""
        tab, p = self.tab, int(self.f.path[0])
        cap = np.inf
        if not committed:
            dist = float(tab.yield_s[p]) - front
            if math.isfinite(dist) and dist > -0.5:
                cap = math.sqrt(EGO_V_YIELD * EGO_V_YIELD + 2.0 * EGO_B_ANTICIPATE * max(dist - 1.0, 0.0))
        if self.w.count and tab.cw_id[p, 0] >= 0:
            w = self.w
            soon = (w.walking & (w.u <= w.length[w.crossing])) | (~w.walking & (t >= w.start - 3.0))
            if soon.any():
                busy = set(w.crossing[soon].tolist())
                for c, c_in in zip(tab.cw_id[p].tolist(), tab.cw_in[p].tolist()):
                    if c >= 0 and c in busy and c_in - front > -0.5:
                        cap = min(cap, math.sqrt(EGO_V_CROSSWALK * EGO_V_CROSSWALK + 2.0 * EGO_B_ANTICIPATE
                                                 * max(c_in - front - 2.0, 0.0)))
        return cap

    def _ego_command(self, a_des: float, v: float, gap: float, v_lead: float, stop: float) -> float:
        """The ego's acceleration [m/s^2]: the IDM demand bounded to comfortable values and jerk, unless the
        kinematic deceleration needed to stay clear of the leader / stop point exceeds EGO_B_EMERGENCY."""
        a_prev = self.ego_a
        b_need = 0.0
        if math.isfinite(gap) and v > v_lead:
            b_need = (v - v_lead) * (v - v_lead) / (2.0 * max(gap - 1.0, 0.1))
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

    def _crosswalk_stops(self, c: _Live, front: np.ndarray, v: np.ndarray, t: float) -> np.ndarray | None:
        """Distance [m] (n,) at which each live vehicle stops for a crosswalk (inf: none); None when no
        pedestrian is on a crossing or waiting to cross (no vehicle stops)."""
        w = self.w
        peds = w.positions_from_a()
        ready = w.ready(t)
        on = ~np.isnan(peds)
        if not (on.any() or ready.any()):
            return None
        near = np.abs(peds[None, None, :] - c.cw_u[..., None]) < 4.5
        blocked = (c.same & near).any(-1) & c.cw_on
        waiting = (c.same & ready[None, None, :]).any(-1) & c.cw_on  # zebra: yield to waiting
        dist = c.cw_in - front[:, None]
        v2 = (v * v)[:, None]
        can = (blocked & (dist > -0.5) & (dist - 1.5 > v2 / (2 * 7.0))) | (
            waiting & (dist - 1.5 > v2 / (2 * 3.0)))
        if c.ego:  # the ego also yields to pedestrians walking towards its lane, while it can stop gently
            ahead = (c.cw_u[0][:, None] - peds[None, :]) * self.ped_sign[None, :]
            coming = (c.same[0] & (ahead > -4.5) & (ahead < 12.0)).any(-1) & c.cw_on[0]
            can[0] |= coming & (dist[0] > -0.5) & (dist[0] - 1.5 > v[0] * v[0] / (2 * EGO_B_COMF * 0.85))
        return np.where(can, np.maximum(dist - 1.5, 0.0), np.inf).min(1)

    def _walk(self, k: int, idx: np.ndarray, c: _Live, front: np.ndarray, v: np.ndarray) -> None:
        """Advances the pedestrians; a crossing is unsafe while a live vehicle is on it or about to be."""
        w = self.w
        unsafe = np.zeros(len(w.crossings), bool)
        green = True if self.ped_green is None else bool(self.ped_green[min(k, len(self.ped_green) - 1)])
        t = (k - WARMUP - CURRENT_INDEX) * SIM_DT
        if green and w.ready(t).any():  # else nobody can start crossing and `unsafe` does not matter
            dist = c.cw_in - front[:, None]
            rear = front - 2 * c.half
            live = self.f.active[idx][:, None] & c.cw_on
            coming = (dist > 0) & (dist < (v * v)[:, None] / (2 * 2.5) + 5.0) & (v[:, None] > 0.5)
            on = (dist <= 0) & (rear[:, None] < c.cw_out)
            hit = live & (coming | on)
            unsafe[c.cw_id[hit]] = True
        w.step(t, SIM_DT, unsafe, green)

    def _try_lane_change(self, idx, lanes, st, lead, g_lead, v0) -> bool:
        """Moves the ego onto a neighbour path when blocked and a gap allows; True if it did."""
        f, tab = self.f, self.tab
        j = lead[0]
        if not np.isfinite(g_lead[0]) or g_lead[0] > 60.0:
            return False
        blocker_static = bool(f.static[idx[j]])
        slow = f.v[idx[j]] < 0.7 * v0[0] and g_lead[0] < 40.0
        if not (blocker_static or slow):
            return False
        ve = f.v[0]
        for side in self.side_order:
            target = self.neighbours.get(int(f.path[0]), (None, None))[side]
            if target is None:
                continue
            here, _, _ = tab.sample(np.array([f.path[0]]), np.array([f.s[0]]))
            s_t, d0 = pl.project(here, None, tab.segments(target))
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
            return True
        return False
