"""pSTL's action space: controls (ω, a) per 0.5 s step, rolled out by a unicycle from the ego's current speed.

pSTL denoises controls u = (ω, a) / (ω_max, a_max) and integrates them, so its trajectories are smooth by
construction; sampling waypoints instead leaves jitter that 0.5 s finite differences turn into speed and
heading errors. Plans here are rolled out semi-implicitly in the ego frame (x0 = y0 = ψ0 = 0, v0 = the
current speed), step k = 1..8 of dt:

    v_k = max(v_{k-1} + a_k dt, 0),  ψ_k = ψ_{k-1} + ω_k dt,  p_k = p_{k-1} + v_k dt (cos ψ_k, sin ψ_k)

`plan_to_controls` inverts it from a plan's poses (ψ_k its headings, v_k the displacement along ψ_k), exactly
for plans this rollout made. Guidance differentiates through the rollout (`guidance.guided_mean`).
"""

from __future__ import annotations

import torch

OMEGA_MAX = 1.0  # [rad/s] ω of a control at +-1 (pSTL: 0.5 on nuScenes; our intersections turn faster)
ACCEL_MAX = 5.0  # [m/s^2] a at +-1 (pSTL: 5)
STEP_DT = 0.5  # [s] between plan poses


def controls_to_plan(u: torch.Tensor, v0: torch.Tensor, dt: float = STEP_DT) -> torch.Tensor:
    """(N, T, 2) normalised controls, (N,) current speeds [m/s] -> (N, T, 3) plans x, y [m], ψ [rad]."""
    omega, accel = u[..., 0] * OMEGA_MAX, u[..., 1] * ACCEL_MAX
    speed, heading = v0.to(u.dtype), torch.zeros_like(v0, dtype=u.dtype)
    x, y = torch.zeros_like(heading), torch.zeros_like(heading)
    poses = []
    for k in range(u.shape[-2]):
        speed = torch.clamp(speed + accel[..., k] * dt, min=0.0)
        heading = heading + omega[..., k] * dt
        x = x + speed * dt * torch.cos(heading)
        y = y + speed * dt * torch.sin(heading)
        poses.append(torch.stack([x, y, heading], dim=-1))
    return torch.stack(poses, dim=-2)


def plan_to_controls(plan: torch.Tensor, v0: torch.Tensor, dt: float = STEP_DT) -> torch.Tensor:
    """(N, T, 3) plans [m, m, rad] and (N,) current speeds [m/s] -> (N, T, 2) normalised controls (not
    clipped); the exact inverse of `controls_to_plan` for the plans it makes."""
    heading = torch.cat([torch.zeros_like(plan[..., :1, 2]), plan[..., 2]], dim=-1)
    step = plan[..., :2] - torch.cat([torch.zeros_like(plan[..., :1, :2]), plan[..., :-1, :2]], dim=-2)
    speed = (step[..., 0] * torch.cos(heading[..., 1:]) + step[..., 1] * torch.sin(heading[..., 1:])) / dt
    speeds = torch.cat([v0.to(plan.dtype)[..., None], speed], dim=-1)
    omega = torch.diff(heading, dim=-1) / dt
    accel = torch.diff(speeds, dim=-1) / dt
    return torch.stack([omega / OMEGA_MAX, accel / ACCEL_MAX], dim=-1)
