"""Straightforward transcriptions of the four repositories' nuScenes planning metrics, for cross-checks only.

Each function follows its repository's code line by line (loops, frame flips, index arithmetic), in numpy
instead of torch, and imports nothing from eval/. Inputs are in our ego frame (x forward, y left) and are
first moved into the repository's frame: the nuScenes LiDAR frame has X right, Y forward, so X = -y, Y = x
and a heading turns by +pi/2.

One substitution, the same in all three raster metrics: the repositories fill their GT labels with
cv2.fillPoly on corners rounded to pixels; here each label pixel is filled when its centre is inside the
(unrounded) box, by a transcription of skimage.draw.polygon, in the label's own pixel geometry.
"""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import Polygon

W, H = 1.85, 4.084  # ego width, length [m]
DX = np.array([0.5, 0.5])
BX = np.array([-49.75, -49.75])
BEV = np.array([200, 200])
VEHICLE, PEDESTRIAN, BICYCLE = 0, 1, 2  # scenes.agents.AgentCategory values


def skimage_polygon(r, c, shape=None):
    """skimage.draw._draw._polygon: pixels whose integer centre passes skimage's point_in_polygon."""
    r, c = np.asarray(r, float), np.asarray(c, float)
    minr, maxr = int(max(0, r.min())), math.ceil(r.max())
    minc, maxc = int(max(0, c.min())), math.ceil(c.max())
    if shape is not None:
        maxr, maxc = min(shape[0] - 1, maxr), min(shape[1] - 1, maxc)
    rr, cc = [], []
    for r_i in range(minr, maxr + 1):
        for c_i in range(minc, maxc + 1):
            inside, j = False, len(r) - 1
            for i in range(len(r)):
                if ((r[i] <= r_i < r[j]) or (r[j] <= r_i < r[i])) and (
                        c_i < (c[j] - c[i]) * (r_i - r[i]) / (r[j] - r[i]) + c[i]):
                    inside = not inside
                j = i
            if inside:
                rr.append(r_i)
                cc.append(c_i)
    return np.array(rr, dtype=np.int64), np.array(cc, dtype=np.int64)


def to_lidar(xy):
    """Our ego frame (x forward, y left) to nuScenes LiDAR (X right, Y forward)."""
    return np.stack([-xy[..., 1], xy[..., 0]], axis=-1)


def corners_ours(box):
    """Corners (4, 2) of (x, y, yaw, length, width) in our frame."""
    x, y, yaw, length, width = box
    local = np.array([[length / 2, width / 2], [-length / 2, width / 2], [-length / 2, -width / 2],
                      [length / 2, -width / 2]])
    rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    return local @ rot.T + [x, y]


# ---------------------------------------------------------------- the shared raster footprint (ST-P3 style)

def footprint():
    """metrics.py:292-301 / planning_metrics.py:49-58 / metric_stp3.py:179-186."""
    pts = np.array([[-H / 2. + 0.5, W / 2.], [H / 2. + 0.5, W / 2.], [H / 2. + 0.5, -W / 2.],
                    [-H / 2. + 0.5, -W / 2.]])
    pts = (pts - BX) / DX
    pts[:, [0, 1]] = pts[:, [1, 0]]
    rr, cc = skimage_polygon(pts[:, 1], pts[:, 0])
    return np.concatenate([rr[:, None], cc[:, None]], axis=-1)


def stp3_single_coll(traj, segmentation):
    """ST-P3 metrics.py evaluate_single_coll (UniAD's is the same): traj (n, 2) already flipped by caller."""
    rc = footprint()
    n_future = traj.shape[0]
    trajs = traj.reshape(n_future, 1, 2).copy()
    trajs[:, :, [0, 1]] = trajs[:, :, [1, 0]]
    trajs = trajs / DX
    trajs = trajs + rc
    r = np.clip(trajs[:, :, 0].astype(np.int32), 0, BEV[0] - 1)
    c = np.clip(trajs[:, :, 1].astype(np.int32), 0, BEV[1] - 1)
    collision = np.full(n_future, False)
    for t in range(n_future):
        collision[t] = np.any(segmentation[t, r[t], c[t]])
    return collision


def stp3_evaluate_coll(trajs, gt_trajs, segmentation):
    """ST-P3 metrics.py evaluate_coll (obj_box_coll part); UniAD's is the same."""
    B, n_future, _ = trajs.shape
    trajs = trajs * np.array([-1, 1])
    gt_trajs = gt_trajs * np.array([-1, 1])
    obj_box_coll_sum = np.zeros(n_future)
    for i in range(B):
        gt_box_coll = stp3_single_coll(gt_trajs[i], segmentation[i])
        m2 = np.logical_not(gt_box_coll)
        box_coll = stp3_single_coll(trajs[i], segmentation[i])
        ti = np.arange(n_future)
        obj_box_coll_sum[ti[m2]] += box_coll[ti[m2]].astype(np.int64)
    return obj_box_coll_sum


# ------------------------------------------------------------------------------------------------- ST-P3

def stp3_labels(boxes, valid, category):
    """NuscenesData.py get_birds_eye_view_label: ego frame (x forward, y left), rows x, columns y;
    vehicle.* (bicycles included) and human.* OR-ed as in evaluate.py."""
    A, T = valid.shape
    occupancy = np.zeros((T, 200, 200))
    for t in range(T):
        for a in range(A):
            if valid[a, t] and category[a] in (VEHICLE, BICYCLE, PEDESTRIAN):
                pts = (corners_ours(boxes[a, t]) - BX + DX / 2.0) / DX  # unrounded pixels
                rr, cc = skimage_polygon(pts[:, 0], pts[:, 1], (200, 200))
                occupancy[t, rr, cc] = 1.0
    return occupancy


def stp3(plan, gt, gt_valid, boxes, valid, category):
    """evaluate.py:71-73, 133-137, 163-166 with metrics.py PlanningMetric."""
    keep = [i for i in range(len(plan)) if gt_valid[i].all()]  # NuscenesData.get_indices drops the rest
    trajs, gt_trajs = to_lidar(plan[keep]), to_lidar(gt[keep])
    occupancy = np.stack([stp3_labels(boxes[i], valid[i], category[i]) for i in keep])
    out = {}
    for i in range(3):
        cur_time = (i + 1) * 2
        L2 = np.sqrt(((trajs[:, :cur_time] - gt_trajs[:, :cur_time]) ** 2).sum(axis=-1)).sum(axis=0)
        obj_box_col = stp3_evaluate_coll(trajs[:, :cur_time], gt_trajs[:, :cur_time], occupancy[:, :cur_time])
        total = len(trajs)
        out[f"l2_{i + 1}s"] = (L2 / total).mean()
        out[f"collision_{i + 1}s"] = (obj_box_col / total).mean()
    out["n_used"] = len(keep)
    return out


# ------------------------------------------------------------------------------------------------- UniAD

def uniad_labels(boxes, valid, category, gt_valid):
    """occflow_label.py: LiDAR corners to pixels, cv2 points (X, Y) so rows Y (forward), columns X (right);
    frames past the log are filled with ignore_index 255."""
    A, T = valid.shape
    segmentation = np.zeros((T, 200, 200))
    for t in range(T):
        if not gt_valid[t]:
            segmentation[t] = 255
            continue
        for a in range(A):
            if valid[a, t] and category[a] in (VEHICLE, BICYCLE, PEDESTRIAN):
                pts = (to_lidar(corners_ours(boxes[a, t])) - BX + DX / 2.0) / DX
                rr, cc = skimage_polygon(pts[:, 1], pts[:, 0], (200, 200))
                segmentation[t, rr, cc] = 1.0
    return segmentation


def uniad(plan, gt, gt_valid, boxes, valid, category):
    """planning_metrics.py update/compute, test.py:102, "uniad" strategy value[i] at steps 2, 4, 6."""
    obj_box_col, L2_sum, total = np.zeros(6), np.zeros(6), 0
    for i in range(len(plan)):
        trajs = to_lidar(plan[i:i + 1])
        gt_trajs = to_lidar(np.where(gt_valid[i][:, None], gt[i], 0.0))[None]
        mask = np.repeat(gt_valid[i][None, :, None], 2, axis=-1).astype(float)
        segmentation = uniad_labels(boxes[i], valid[i], category[i], gt_valid[i])[None]
        trajs[..., 0] = -trajs[..., 0]
        gt_trajs[..., 0] = -gt_trajs[..., 0]
        L2 = np.sqrt((((trajs - gt_trajs) ** 2) * mask).sum(axis=-1))
        obj_box_col += stp3_evaluate_coll(trajs, gt_trajs, segmentation)
        L2_sum += L2.sum(axis=0)
        total += len(trajs)
    out = {}
    for k, i in enumerate((1, 3, 5)):
        out[f"l2_{k + 1}s"] = (L2_sum / total)[i]
        out[f"collision_{k + 1}s"] = (obj_box_col / total)[i]
    out["n_used"] = total
    return out


# --------------------------------------------------------------------------------------------------- VAD

def vad_labels(boxes, valid, category):
    """metric_stp3.py get_birds_eye_view_label / _get_poly_region_in_image: LiDAR boxes, cv frame
    (u, v) = ((X + 50) / 0.5, (50 - Y) / 0.5), filled as [v, u]."""
    A, T = valid.shape
    occupancy = np.zeros((T, 200, 200))
    lidar2cv_rot = np.array([[1, 0], [0, -1]])
    for t in range(T):
        for i in range(A):
            if valid[i, t] and category[i] in (VEHICLE, BICYCLE, PEDESTRIAN):
                x_a, y_a = to_lidar(boxes[i, t, :2])
                yaw_a = boxes[i, t, 2] + np.pi / 2
                agent_length, agent_width = boxes[i, t, 3], boxes[i, t, 4]
                trans_a = np.array([[x_a, y_a]]).T
                rot_mat_a = np.array([[np.cos(yaw_a), -np.sin(yaw_a)], [np.sin(yaw_a), np.cos(yaw_a)]])
                agent_corner = np.array([
                    [agent_length / 2, -agent_length / 2, -agent_length / 2, agent_length / 2],
                    [agent_width / 2, agent_width / 2, -agent_width / 2, -agent_width / 2]])
                agent_corner_lidar = np.matmul(rot_mat_a, agent_corner) + trans_a
                cv = (np.matmul(lidar2cv_rot, agent_corner_lidar) - BX[:, None] + DX[:, None] / 2.0).T / DX
                rr, cc = skimage_polygon(cv[:, 1], cv[:, 0], (200, 200))
                occupancy[t, rr, cc] = 1.0
    return occupancy


def vad_single_coll(traj, segmentation):
    """metric_stp3.py evaluate_single_coll."""
    rc = footprint()
    n_future = traj.shape[0]
    trajs_ = traj.reshape(n_future, 1, 2).copy()
    trajs_[:, :, [0, 1]] = trajs_[:, :, [1, 0]]
    trajs_ = trajs_ / DX + rc
    r = np.clip((BEV[0] - trajs_[:, :, 0]).astype(np.int32), 0, BEV[0] - 1)
    c = np.clip(trajs_[:, :, 1].astype(np.int32), 0, BEV[1] - 1)
    collision = np.full(n_future, False)
    for t in range(n_future):
        collision[t] = np.any(segmentation[t, r[t], c[t]])
    return collision


def vad(plan, gt, gt_valid, boxes, valid, category):
    """VAD.py:593-640 per sample, nuscenes_vad_dataset.py:1797-1813 over num_valid."""
    sums, num_valid = {f"{m}_{k}s": 0.0 for m in ("l2", "collision") for k in (1, 2, 3)}, 0
    for i in range(len(plan)):
        if not gt_valid[i].all():  # fut_valid_flag
            continue
        num_valid += 1
        pred, gt_traj = to_lidar(plan[i]), to_lidar(gt[i])
        occupancy = vad_labels(boxes[i], valid[i], category[i])
        for k in range(3):
            cur_time = (k + 1) * 2
            ade = sum(math.sqrt((pred[j, 0] - gt_traj[j, 0]) ** 2 + (pred[j, 1] - gt_traj[j, 1]) ** 2)
                      for j in range(cur_time)) / cur_time
            gt_box_coll = vad_single_coll(gt_traj[:cur_time], occupancy)
            box_coll = vad_single_coll(pred[:cur_time], occupancy)
            obj_box_coll = np.where(gt_box_coll, 0, box_coll.astype(np.int64))
            sums[f"l2_{k + 1}s"] += ade
            sums[f"collision_{k + 1}s"] += obj_box_coll.mean()
    out = {key: value / num_valid for key, value in sums.items()}
    out["n_used"] = num_valid
    return out


# ------------------------------------------------------------------------------------------- SparseDrive

def box3d_to_corners(box3d):
    """projects/mmdet3d_plugin/datasets/utils.py box3d_to_corners, [x, y, z, w, l, h, yaw] (N, 7)."""
    corners_norm = np.stack(np.unravel_index(np.arange(8), [2] * 3), axis=1)
    corners_norm = corners_norm[[0, 1, 3, 2, 4, 5, 7, 6]]
    corners_norm = corners_norm - np.array([0.5, 0.5, 0.5])
    corners = box3d[:, None, [3, 4, 5]] * corners_norm.reshape([1, 8, 3])
    rot_cos, rot_sin = np.cos(box3d[:, 6]), np.sin(box3d[:, 6])
    rot_mat = np.tile(np.eye(3)[None], (box3d.shape[0], 1, 1))
    rot_mat[:, 0, 0] = rot_cos
    rot_mat[:, 0, 1] = -rot_sin
    rot_mat[:, 1, 0] = rot_sin
    rot_mat[:, 1, 1] = rot_cos
    corners = (rot_mat[:, None] @ corners[..., None]).squeeze(axis=-1)
    return corners + box3d[:, None, :3]


def check_collision(ego_box, boxes):
    """planning_eval.py:13-33."""
    if boxes.shape[0] == 0:
        return False
    ego_box = ego_box.copy()
    ego_box[0] += 0.5 * np.cos(ego_box[6])
    ego_box[1] += 0.5 * np.sin(ego_box[6])
    ego_corners_box = box3d_to_corners(ego_box[None])[0, [0, 3, 7, 4], :2]
    corners_box = box3d_to_corners(boxes)[:, [0, 3, 7, 4], :2]
    ego_poly = Polygon([(p[0], p[1]) for p in ego_corners_box])
    for i in range(len(corners_box)):
        if ego_poly.intersects(Polygon([(p[0], p[1]) for p in corners_box[i]])):
            return True
    return False


def get_yaw(traj):
    """planning_eval.py:35-53."""
    if np.linalg.norm(traj[-1] - traj[0]) < 0.5:
        return np.ones(traj.shape[0]) * np.pi / 2
    traj_cat = np.concatenate([np.zeros((1, 2)), traj], axis=0)
    yaw = np.zeros(traj.shape[0] + 1)
    yaw[1:-1] = np.arctan2(traj_cat[2:, 1] - traj_cat[:-2, 1], traj_cat[2:, 0] - traj_cat[:-2, 0])
    yaw[-1] = np.arctan2(traj_cat[-1, 1] - traj_cat[-2, 1], traj_cat[-1, 0] - traj_cat[-2, 0])
    return yaw[1:]


def sparsedrive_single_coll(traj, fut_boxes):
    """planning_eval.py evaluate_single_coll."""
    n_future = traj.shape[0]
    ego_box = np.zeros((n_future, 7))
    ego_box[:, :2] = traj
    ego_box[:, 3:6] = [H, W, 1.56]
    ego_box[:, 6] = get_yaw(traj)
    return np.array([check_collision(ego_box[t], fut_boxes[t]) for t in range(n_future)])


def sparsedrive(plan, gt, gt_valid, boxes, valid, category):
    """planning_eval.py planning_eval / PlanningMetric; fut_boxes: every valid GT box of the future frame."""
    obj_box_col, L2_sum, total = np.zeros(6), np.zeros(6), 0
    for i in range(len(plan)):
        if not gt_valid[i].all():  # "for incomplete gt, we do not count this sample"
            continue
        fut_boxes = []
        for t in range(6):
            rows = []
            for a in range(len(valid[i])):
                if valid[i, a, t]:
                    X, Y = to_lidar(boxes[i, a, t, :2])
                    rows.append([X, Y, 0.0, boxes[i, a, t, 3], boxes[i, a, t, 4], 1.5, boxes[i, a, t, 2] + np.pi / 2])
            fut_boxes.append(np.array(rows).reshape(-1, 7))
        trajs, gt_trajs = to_lidar(plan[i:i + 1]), to_lidar(gt[i:i + 1])
        trajs[..., 0] = -trajs[..., 0]
        gt_trajs[..., 0] = -gt_trajs[..., 0]
        L2 = np.sqrt(((trajs - gt_trajs) ** 2).sum(axis=-1))
        trajs, gt_trajs = trajs * np.array([-1, 1]), gt_trajs * np.array([-1, 1])
        gt_box_coll = sparsedrive_single_coll(gt_trajs[0], fut_boxes)
        box_coll = sparsedrive_single_coll(trajs[0], fut_boxes)
        obj_box_col += np.logical_and(box_coll, np.logical_not(gt_box_coll))
        L2_sum += L2.sum(axis=0)
        total += 1
    out = {}
    for key, value in (("l2", L2_sum / total), ("collision", obj_box_col / total)):
        cumulative = [np.array(value[:i + 1]).mean() for i in range(6)]
        for k, i in enumerate((1, 3, 5)):
            out[f"{key}_{k + 1}s"] = cumulative[i]
    out["n_used"] = total
    return out


TRANSCRIPTIONS = {"stp3": stp3, "vad": vad, "uniad": uniad, "sparsedrive": sparsedrive}
