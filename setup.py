"""Installation of the mp3d_mmdet plugin.

The heavy stack (torch, mmcv with compiled ops) is installed by ``tools/setup_env.sh``:
torch must be the CPU or CUDA build the user chooses and mmcv 2.1.0 has no wheel for
current torch releases, so neither is pulled in from here.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mp3d_mmdet', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mp3d_mmdet',
    version=read_version(),
    description=('MP3D FPN: 3D context modelling with supervised pre-training for '
                 'universal lesion detection in CT slices, as an MMDetection 3.x plugin'),
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
    long_description_content_type='text/markdown',
    python_requires=">=3.10",
    packages=find_packages(include=['mp3d_mmdet', 'mp3d_mmdet.*']),
    # the HTML report's style sheet and scripts (read with importlib.resources)
    package_data={'mp3d_mmdet.volume.outputs': ['templates/*.css', 'templates/*.js']},
    install_requires=[
        'mmdet>=3.3.0,<3.4',
        'mmengine>=0.10.7,<1',
        'mmcv>=2.0.0rc4,<2.2.0',
        'numpy>=1.23,<2',
        'SimpleITK>=2.2',
        'nibabel>=5',
        'pycocotools>=2.0.6',
        'matplotlib>=3.5',
        'opencv-python>=4.5,<4.12',
        'tqdm',
        'highdicom>=0.28,<0.29',  # DICOM SR output
    ],
    entry_points={
        'console_scripts': [
            'mp3d-detect-volume = mp3d_mmdet.cli.detect_volume:main',
            'mp3d-detect-volumes = mp3d_mmdet.cli.detect_volumes:main',
            'mp3d-eval-volumes = mp3d_mmdet.cli.eval_volumes:main',
            'mp3d-eval-froc = mp3d_mmdet.cli.eval_froc:main',
            'mp3d-draw-detections = mp3d_mmdet.cli.draw_detections:main',
            'mp3d-make-synthetic-deeplesion = mp3d_mmdet.cli.make_synthetic_deeplesion:main',
            'mp3d-convert-pretraining-checkpoint = '
            'mp3d_mmdet.cli.convert_pretraining_checkpoint:main',
            'mp3d-convert-official-checkpoint = '
            'mp3d_mmdet.cli.convert_official_checkpoint:main',
            'mp3d-quick-check = mp3d_mmdet.cli.quick_check:main',
        ],
    },
    extras_require={
        'tests': ['pytest>=7', 'hypothesis>=6'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
