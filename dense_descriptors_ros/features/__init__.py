"""Kernels on dense descriptor images, shared by tracking, slam, metrics and learning (numpy and torch, no ROS).

A descriptor image holds one unit-L2 descriptor per pixel: numpy float32 (H, W, D) or torch (D, H, W). Points are
(x = column, y = row) with pixel centres at integer coordinates. Modules: descriptor_image (checks, patch means,
windows), sampling (descriptors at sub-pixel points, also from maps at a lower resolution than the image),
distance (descriptor distance from similarity), keypoints (distinctiveness and grid spread of chosen points).
"""
