"""ament_python package: installs with colcon in a ROS 2 workspace or with pip into a venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dense_descriptors_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/rviz", glob("config/rviz/*.rviz")),
        (f"share/{PACKAGE}/training", glob("training/*.yaml")),
    ],
    package_data={PACKAGE: ["py.typed", "model/data/*.npz"]},
    install_requires=["setuptools", "numpy", "pyyaml", "tqdm"],
    zip_safe=True,
    maintainer="dense_descriptors_ros maintainers",
    maintainer_email="maintainers@dense-descriptors.invalid",
    description="Self-supervised dense visual descriptors from RGB video, with ROS 2 nodes.",
    license="Apache-2.0",
    python_requires=">=3.10",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "dense-descriptors = dense_descriptors_ros.cli.main:main",
            "descriptor_node = dense_descriptors_ros.nodes.descriptor_node:main",
            "tracker_node = dense_descriptors_ros.nodes.tracker_node:main",
            "slam_node = dense_descriptors_ros.nodes.slam_node:main",
            "recorder_node = dense_descriptors_ros.nodes.recorder_node:main",
        ],
    },
)
