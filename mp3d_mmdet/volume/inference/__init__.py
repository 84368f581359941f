"""Running the detector over a volume's axial slices and linking its boxes into 3D candidates."""
from .settings import (InferenceSetupError, SliceInputSettings, is_resize_transform,
                       load_inference_config, plan_in_plane_resize, slice_input_settings,
                       test_pipeline_cfg)
from .precision import PRECISIONS, cpu_bf16_flags, precision_context, resolve_precision
from .detector import SliceDetections, VolumeLesionDetector
from .linking import LesionCandidate, LinkedTrack, link_slice_detections, measure_lesion_candidates
from .detection import VolumeDetectionResult, detect_lesions_in_volume

__all__ = [
    'InferenceSetupError', 'PRECISIONS', 'cpu_bf16_flags', 'precision_context',
    'resolve_precision', 'SliceInputSettings', 'load_inference_config', 'slice_input_settings',
    'plan_in_plane_resize', 'test_pipeline_cfg', 'is_resize_transform', 'SliceDetections',
    'VolumeLesionDetector', 'LinkedTrack', 'LesionCandidate', 'link_slice_detections',
    'measure_lesion_candidates', 'VolumeDetectionResult', 'detect_lesions_in_volume'
]
