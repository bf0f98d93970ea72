"""The SLAM map: keyframes, map points (structure of arrays) and their observations, guarded by one lock.

Map points live in growable arrays (position, descriptor, viewing normal, statistics, alive flag) so that tracking
and bundle adjustment select, read and write them with index arrays instead of Python objects. Observations are
three parallel integer arrays (keyframe id, keypoint index, point id) plus a validity flag; covisibility and BA
windows are computed from them with ``np.bincount`` / ``np.isin``. Tracking and local mapping share the map through
``SlamMap.lock`` (an RLock): readers copy what they need under the lock, heavy work runs outside it.

A culled keyframe (keyframe culling in local mapping) leaves its pose relative to a parent keyframe behind, so
frames and tracking that still name it resolve to the parent (:meth:`SlamMap.resolve_keyframe`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from dense_descriptors_ros.geometry.se3 import invert_pose


@dataclass
class KeyFrame:
    """A keyframe: its pose, stereo features and, per keypoint, the map point it observes (-1: none)."""

    id: int
    stamp: float
    T_world_cam: np.ndarray
    keypoints: np.ndarray
    descriptors: np.ndarray
    right_x: np.ndarray
    point_ids: np.ndarray
    global_descriptor: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    # 6x6 marginal covariance of the pose from the last bundle adjustment that moved it (right perturbation of
    # T_world_cam, (translation, rotation) order); None before its first BA.
    covariance: np.ndarray | None = None


class _Growable:
    """A numpy array with amortised O(1) append along axis 0."""

    def __init__(self, shape_tail: tuple[int, ...], dtype: np.dtype | type, fill: float = 0) -> None:
        self._fill = fill
        self.data = np.full((64, *shape_tail), fill, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> np.ndarray:
        n = len(values)
        if self.size + n > len(self.data):
            grown = np.full((max(2 * len(self.data), self.size + n), *self.data.shape[1:]), self._fill, self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        index = np.arange(self.size, self.size + n)
        self.data[index] = values
        self.size += n
        return index

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.size]


class SlamMap:
    """Keyframes, map points and observations of one SLAM session."""

    def __init__(self, descriptor_dim: int, descriptor_dtype: np.dtype) -> None:
        self.lock = threading.RLock()
        self.descriptor_dim = descriptor_dim
        self.descriptor_dtype = np.dtype(descriptor_dtype)
        self.keyframes: dict[int, KeyFrame] = {}
        self._positions = _Growable((3,), np.float64)
        self._descriptors = _Growable((descriptor_dim,), self.descriptor_dtype)
        self._normals = _Growable((3,), np.float64)
        self._alive = _Growable((), bool)
        self._reference_kf = _Growable((), np.int64)
        self._visible = _Growable((), np.int64)  # times predicted in a tracked frame's view
        self._found = _Growable((), np.int64)  # times matched in a tracked frame
        self._outliers = _Growable((), np.int64)  # BA observations rejected as outliers
        self._obs_kf = _Growable((), np.int64)
        self._obs_kp = _Growable((), np.int64)
        self._obs_pt = _Growable((), np.int64)
        self._obs_valid = _Growable((), bool)
        self.culled: dict[int, tuple[int, np.ndarray]] = {}  # culled keyframe -> (parent, T_parent_culled)
        self.next_keyframe_id = 0
        self.version = 0  # bumped by every change of poses or positions (BA, loop closure)

    # ---- points -------------------------------------------------------------------------------------------
    @property
    def num_points(self) -> int:
        return self._positions.size

    @property
    def positions(self) -> np.ndarray:
        return self._positions.view

    @property
    def descriptors(self) -> np.ndarray:
        return self._descriptors.view

    @property
    def normals(self) -> np.ndarray:
        return self._normals.view

    @property
    def alive(self) -> np.ndarray:
        return self._alive.view

    @property
    def reference_keyframe(self) -> np.ndarray:
        return self._reference_kf.view

    @property
    def visible_count(self) -> np.ndarray:
        return self._visible.view

    @property
    def found_count(self) -> np.ndarray:
        return self._found.view

    @property
    def outlier_count(self) -> np.ndarray:
        return self._outliers.view

    def add_points(
        self, positions: np.ndarray, descriptors: np.ndarray, camera_center: np.ndarray, reference_kf: int
    ) -> np.ndarray:
        """Append points seen from ``camera_center``; returns their ids."""
        with self.lock:
            normals = positions - camera_center
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
            ids = self._positions.extend(positions)
            self._descriptors.extend(descriptors.astype(self.descriptor_dtype))
            self._normals.extend(normals)
            self._alive.extend(np.ones(len(ids), bool))
            self._reference_kf.extend(np.full(len(ids), reference_kf))
            for arr in (self._visible, self._found, self._outliers):
                arr.extend(np.zeros(len(ids), np.int64))
            return ids

    def alive_ids(self) -> np.ndarray:
        return np.nonzero(self.alive)[0]

    # ---- keyframes and observations -------------------------------------------------------------------------
    def new_keyframe_id(self) -> int:
        with self.lock:
            self.next_keyframe_id += 1
            return self.next_keyframe_id - 1

    def add_keyframe(self, keyframe: KeyFrame) -> None:
        """Insert a keyframe and register the observations in its ``point_ids``."""
        with self.lock:
            self.keyframes[keyframe.id] = keyframe
            kp = np.nonzero(keyframe.point_ids >= 0)[0]
            self._obs_kf.extend(np.full(len(kp), keyframe.id))
            self._obs_kp.extend(kp)
            self._obs_pt.extend(keyframe.point_ids[kp])
            self._obs_valid.extend(np.ones(len(kp), bool))

    def add_observations(self, kf_id: int, kp_index: np.ndarray, point_ids: np.ndarray) -> None:
        """Link keypoints of a keyframe to (other) points, replacing what they observed before."""
        with self.lock:
            kf = self.keyframes[kf_id]
            relinked = kf.point_ids[kp_index] >= 0
            if relinked.any():
                self.remove_observations(np.full(int(relinked.sum()), kf_id), kp_index[relinked])
            kf.point_ids[kp_index] = point_ids
            self._obs_kf.extend(np.full(len(kp_index), kf_id))
            self._obs_kp.extend(kp_index)
            self._obs_pt.extend(point_ids)
            self._obs_valid.extend(np.ones(len(kp_index), bool))

    def observations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Valid observations as (keyframe ids, keypoint indices, point ids)."""
        valid = self._obs_valid.view & self.alive[self._obs_pt.view] if self._obs_pt.size else np.zeros(0, bool)
        return self._obs_kf.view[valid], self._obs_kp.view[valid], self._obs_pt.view[valid]

    def remove_observations(self, kf_ids: np.ndarray, kp_index: np.ndarray) -> None:
        """Drop observations (e.g. BA outliers); the keyframe's keypoint becomes unmatched."""
        with self.lock:
            if len(kf_ids) == 0:
                return
            key = self._obs_kf.view * 1_000_000 + self._obs_kp.view
            drop = np.isin(key, np.asarray(kf_ids) * 1_000_000 + np.asarray(kp_index))
            self._obs_valid.data[: self._obs_valid.size][drop] = False
            for kf_id, kp in zip(kf_ids, kp_index, strict=True):
                kf = self.keyframes.get(int(kf_id))
                if kf is not None:
                    kf.point_ids[kp] = -1

    def observation_counts(self) -> np.ndarray:
        """(num_points,) number of keyframes observing each point."""
        _, _, pts = self.observations()
        return np.bincount(pts, minlength=self.num_points)

    def covisible_keyframes(self, kf_id: int, limit: int) -> list[int]:
        """Keyframes sharing most points with ``kf_id`` (best first, ``kf_id`` excluded)."""
        with self.lock:
            kf = self.keyframes[kf_id]
            # Called for every tracked frame over all the map's observations: a point mask and bincount rather
            # than isin and unique (both sort).
            seen = np.zeros(self.num_points, bool)
            seen[kf.point_ids[kf.point_ids >= 0]] = True
            obs_kf, _, obs_pt = self.observations()
            shared = obs_kf[seen[obs_pt]]
            if len(shared) == 0:
                return []
            counts = np.bincount(shared)
            ids = np.nonzero(counts)[0]
            order = np.argsort(-counts[ids], kind="stable")
            return [int(i) for i in ids[order] if i != kf_id and int(i) in self.keyframes][:limit]

    def remove_points(self, ids: np.ndarray) -> None:
        """Mark points dead and unlink them from keyframes."""
        with self.lock:
            ids = np.asarray(ids, dtype=np.int64)
            if len(ids) == 0:
                return
            self.alive[ids] = False
            dead = np.zeros(self.num_points, bool)
            dead[ids] = True
            for kf in self.keyframes.values():
                linked = kf.point_ids >= 0
                kf.point_ids[linked & dead[np.maximum(kf.point_ids, 0)]] = -1

    def keyframe_ids(self) -> list[int]:
        with self.lock:
            return sorted(self.keyframes)

    def remove_keyframe(self, kf_id: int, parent_id: int) -> None:
        """Cull a keyframe: its observations go, its points and the frames that named it move to ``parent_id``."""
        with self.lock:
            kf = self.keyframes.pop(kf_id)
            self.culled[kf_id] = (parent_id, invert_pose(self.keyframes[parent_id].T_world_cam) @ kf.T_world_cam)
            valid = self._obs_valid.data[: self._obs_valid.size]
            valid[self._obs_kf.view == kf_id] = False
            self.reference_keyframe[self.reference_keyframe == kf_id] = parent_id

    def resolve_keyframe(self, kf_id: int) -> tuple[int, np.ndarray] | None:
        """The keyframe that stands for ``kf_id`` (itself, or the parent of a culled one) and T_resolved_kf; None
        for an id this map never had."""
        with self.lock:
            T = np.eye(4)
            while kf_id not in self.keyframes:
                if kf_id not in self.culled:
                    return None
                kf_id, T_parent = self.culled[kf_id]
                T = T_parent @ T
            return kf_id, T

    # ---- serialisation ------------------------------------------------------------------------------------------
    _POINT_ARRAYS = (
        "_positions",
        "_descriptors",
        "_normals",
        "_alive",
        "_reference_kf",
        "_visible",
        "_found",
        "_outliers",
        "_obs_kf",
        "_obs_kp",
        "_obs_pt",
        "_obs_valid",
    )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array of the map (points, observations, keyframes concatenated with offsets) for ``np.savez``."""
        with self.lock:
            out = {name.lstrip("_"): getattr(self, name).view.copy() for name in self._POINT_ARRAYS}
            kfs = [self.keyframes[k] for k in sorted(self.keyframes)]
            sizes = np.array([len(kf.keypoints) for kf in kfs], np.int64)
            out["kf_id"] = np.array([kf.id for kf in kfs], np.int64)
            out["kf_stamp"] = np.array([kf.stamp for kf in kfs], np.float64)
            out["kf_pose"] = np.array([kf.T_world_cam for kf in kfs]).reshape(-1, 4, 4)
            out["kf_offsets"] = np.concatenate([[0], np.cumsum(sizes)])
            out["kf_keypoints"] = np.concatenate([kf.keypoints for kf in kfs]) if kfs else np.zeros((0, 2))
            out["kf_descriptors"] = (
                np.concatenate([kf.descriptors for kf in kfs])
                if kfs
                else np.zeros((0, self.descriptor_dim), self.descriptor_dtype)
            )
            out["kf_right_x"] = np.concatenate([kf.right_x for kf in kfs]) if kfs else np.zeros(0)
            out["kf_point_ids"] = np.concatenate([kf.point_ids for kf in kfs]) if kfs else np.zeros(0, np.int64)
            out["kf_global"] = np.array([kf.global_descriptor for kf in kfs], np.float32)
            out["kf_covariance"] = np.array(
                [np.full((6, 6), np.nan) if kf.covariance is None else kf.covariance for kf in kfs]
            ).reshape(-1, 6, 6)
            out["next_keyframe_id"] = np.array(self.next_keyframe_id)
            return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SlamMap:
        """Inverse of :meth:`to_arrays`."""
        desc = arrays["descriptors"]
        slam_map = cls(desc.shape[1], desc.dtype)
        for name in cls._POINT_ARRAYS:
            getattr(slam_map, name).extend(arrays[name.lstrip("_")])
        off = arrays["kf_offsets"]
        for i, kf_id in enumerate(arrays["kf_id"]):
            a, b = int(off[i]), int(off[i + 1])
            slam_map.keyframes[int(kf_id)] = KeyFrame(
                id=int(kf_id),
                stamp=float(arrays["kf_stamp"][i]),
                T_world_cam=arrays["kf_pose"][i].copy(),
                keypoints=arrays["kf_keypoints"][a:b].copy(),
                descriptors=arrays["kf_descriptors"][a:b].copy(),
                right_x=arrays["kf_right_x"][a:b].copy(),
                point_ids=arrays["kf_point_ids"][a:b].copy(),
                global_descriptor=arrays["kf_global"][i].copy(),
                covariance=None if np.isnan(arrays["kf_covariance"][i]).any() else arrays["kf_covariance"][i].copy(),
            )
        slam_map.next_keyframe_id = int(arrays["next_keyframe_id"])
        return slam_map
