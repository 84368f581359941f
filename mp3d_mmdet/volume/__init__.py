"""Whole-volume lesion detection: CT volumes in, linked 3D lesion candidates and viewer files out.

Layered one way, each layer importing only those before it:

==================  ===========================================================================
``io``              CT volumes read onto an axial grid: files, DICOM series, DeepLesion
                    sub-volumes (:class:`CTVolume`, :func:`read_ct_volume`)
``inference``       the detector over every axial slice, and slice boxes linked into 3D lesion
                    candidates (:class:`VolumeLesionDetector`, :func:`detect_lesions_in_volume`)
``outputs``         ``detections.json``, ``lesions.csv``, overlays, 3D Slicer markups, a NIfTI
                    label map, a DICOM SR, an HTML report (:func:`write_volume_outputs`)
``inputs``,         many volumes: their inputs (list, folder, DeepLesion), one resumable
``results_file``,   results file, reading ahead, processes sharing a batch (torchrun, Slurm),
``prefetch``,       the batch loop (:func:`detect_volume_batch`)
``distributed``,
``batch``
==================  ===========================================================================

The few entry points most users need are re-exported by :mod:`mp3d_mmdet.apis`.
"""
from .io import *  # noqa: F401,F403
from .inference import *  # noqa: F401,F403
from .outputs import *  # noqa: F401,F403
from .inputs import *  # noqa: F401,F403
from .results_file import *  # noqa: F401,F403
from .prefetch import *  # noqa: F401,F403
from .distributed import *  # noqa: F401,F403
from .batch import *  # noqa: F401,F403

__all__ = [
    'VolumeInputError', 'VolumeGeometry', 'CTVolume', 'SUPPORTED_FILE_SUFFIXES',
    'STANDARD_ORIENTATION', 'read_ct_volume', 'DeepLesionSubvolume', 'list_deeplesion_subvolumes',
    'read_deeplesion_subvolume', 'parse_subvolume_name', 'write_deeplesion_subvolume_nifti',
    'DEEPLESION_SOURCE_FORMAT', 'InferenceSetupError', 'PRECISIONS', 'cpu_bf16_flags',
    'precision_context', 'resolve_precision', 'SliceInputSettings',
    'load_inference_config', 'slice_input_settings', 'plan_in_plane_resize', 'test_pipeline_cfg',
    'is_resize_transform', 'SliceDetections', 'VolumeLesionDetector', 'LinkedTrack',
    'LesionCandidate', 'link_slice_detections', 'measure_lesion_candidates',
    'VolumeDetectionResult', 'detect_lesions_in_volume', 'CandidateRegion', 'candidate_box_3d',
    'candidate_regions', 'LESION_CSV_COLUMNS', 'VOLUME_OUTPUT_ENTRIES', 'OUTPUT_FORMATS',
    'default_output_formats', 'parse_output_formats', 'detections_to_dict',
    'write_detections_json', 'write_lesions_csv', 'write_candidate_overlays', 'write_viewer_files',
    'prepare_volume_output_dir', 'write_volume_outputs', 'SLICER_MARKUPS_SCHEMA', 'slicer_markups',
    'write_slicer_markups', 'candidate_label_array', 'label_map_image', 'write_label_map',
    'write_dicom_sr', 'build_dicom_sr', 'read_source_series', 'SR_SERIES_NUMBER', 'MAX_SLICE_SIDE',
    'JPEG_QUALITY', 'BOX_RGB', 'SELECTED_RGB', 'HtmlIndexEntry', 'encode_report_slices',
    'render_html_report', 'write_html_report', 'render_html_index', 'write_html_index',
    'VolumeInput', 'volume_name_of_path', 'volume_inputs_from_paths',
    'volume_inputs_from_list_file', 'volume_inputs_from_folder', 'volume_inputs_from_deeplesion',
    'check_unique_names', 'RESULTS_FILE_NAME', 'RESULTS_FORMAT', 'RESULTS_FORMAT_VERSION',
    'candidate_boxes_3d', 'volume_record', 'read_volume_detections', 'read_partial_results',
    'VolumeResultsFile', 'READ_ERRORS', 'prefetched', 'LAUNCHERS', 'init_launcher', 'dist_info',
    'part_file_name', 'absorb_part_files', 'share_of', 'broadcast_from_first', 'gather_all',
    'PartFileProgress', 'batch_settings', 'BatchSummary', 'DistributedBatchError',
    'detect_volume_batch', 'volume_detect_function'
]
