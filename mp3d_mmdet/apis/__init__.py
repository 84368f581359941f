"""The plugin's inference API: lesion detection in whole CT volumes.

    from mp3d_mmdet.apis import detect_lesions_in_volume, write_volume_outputs
    result = detect_lesions_in_volume('scan.nii.gz', 'configs/mp3d_fpn_deeplesion_2x.py',
                                      'epoch_24.pth', device='cuda')
    write_volume_outputs(result, 'out/')

A thin facade over :mod:`mp3d_mmdet.volume` (where every part lives: reading, inference,
linking, viewer files, batches), like ``mmdet.apis`` over mmdet's models.
``mmdet.apis.init_detector`` builds the plugin's model from every shipped config
(``docs/configs.md``); its image loaders do not read N-slice CT inputs, which is what
:class:`VolumeLesionDetector` is for.
"""
from ..volume import (CTVolume, VolumeDetectionResult, VolumeLesionDetector,
                      detect_lesions_in_volume, detect_volume_batch, read_ct_volume,
                      read_volume_detections, write_volume_outputs)

__all__ = [
    'read_ct_volume', 'CTVolume', 'VolumeLesionDetector', 'detect_lesions_in_volume',
    'VolumeDetectionResult', 'write_volume_outputs', 'detect_volume_batch',
    'read_volume_detections'
]
