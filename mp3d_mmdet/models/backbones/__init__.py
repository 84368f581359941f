"""Backbones: MP3D ResNet (pseudo-3D, the paper's model), MR3D (full 3D) and FPN+3DCE."""
from ...utils.slice_depths import slice_depths
from .mp3d_resnet import MP3DResNet, MR3DResNet
from .p3d_blocks import P3DBottleneck
from .resnet_3dce import ResNet3DCE

__all__ = [
    'MP3DResNet', 'MR3DResNet', 'ResNet3DCE', 'P3DBottleneck', 'slice_depths'
]
