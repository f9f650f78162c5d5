from glob import glob

from setuptools import find_packages, setup

package_name = 'seg_kd_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=[package_name, package_name + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools', 'numpy', 'opencv-python-headless', 'pyyaml'],
    extras_require={
        'onnxruntime': ['onnxruntime'],
        'torch': ['torch'],
        'tensorrt': ['tensorrt-cu12>=10,<11', 'cuda-python>=12.6,<13'],
        'test': ['pytest', 'onnx', 'onnxruntime', 'rosbags', 'psutil'],
    },
    zip_safe=True,
    maintainer='seg_kd_ros maintainers',
    maintainer_email='maintainers@seg-kd-ros.invalid',
    description='Distilled real-time semantic segmentation node for adverse weather.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'segmenter_node = seg_kd_ros.segmenter_node:main',
        ],
    },
)
