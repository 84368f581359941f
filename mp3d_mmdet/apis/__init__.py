"""Whole-volume inference: CT volumes in, linked 3D lesion candidates out.

    from mp3d_mmdet.apis import detect_lesions_in_volume, write_volume_outputs
    result = detect_lesions_in_volume('scan.nii.gz', 'configs/mp3d_fpn_deeplesion_2x.py',
                                      'epoch_24.pth', device='cuda')
    write_volume_outputs(result, 'out/')

CLI: ``mp3d-detect-volume INPUT --config CFG --checkpoint CKPT --out DIR``; many volumes
(a list file, a folder, DeepLesion sub-volumes) into one resumable results file:
``mp3d-detect-volumes`` (:mod:`mp3d_mmdet.apis.batch_volume_detection`).
"""
from .batch_volume_detection import (RESULTS_FILE_NAME, BatchSummary, VolumeInput,
                                     VolumeResultsFile, batch_settings, candidate_boxes_3d,
                                     check_unique_names, detect_volume_batch,
                                     read_volume_detections, volume_detect_function,
                                     volume_inputs_from_deeplesion, volume_inputs_from_folder,
                                     volume_inputs_from_list_file, volume_inputs_from_paths,
                                     volume_name_of_path, volume_record)
from .candidate_regions import CandidateRegion, candidate_box_3d, candidate_regions
from .ct_volume import (STANDARD_ORIENTATION, SUPPORTED_FILE_SUFFIXES, CTVolume,
                        VolumeGeometry, VolumeInputError, read_ct_volume)
from .dicom_sr import SR_SERIES_NUMBER, build_dicom_sr, read_source_series, write_dicom_sr
from .deeplesion_subvolumes import (DeepLesionSubvolume, list_deeplesion_subvolumes,
                                    parse_subvolume_name, read_deeplesion_subvolume,
                                    write_deeplesion_subvolume_nifti)
from .html_report import HtmlIndexEntry, write_html_index, write_html_report
from .label_map import candidate_label_array, label_map_image, write_label_map
from .lesion_linking import (LesionCandidate, LinkedTrack, link_slice_detections,
                             measure_lesion_candidates)
from .slicer_markups import SLICER_MARKUPS_SCHEMA, slicer_markups, write_slicer_markups
from .volume_detection import VolumeDetectionResult, detect_lesions_in_volume
from .volume_lesion_detector import (InferenceSetupError, SliceDetections, SliceInputSettings,
                                     VolumeLesionDetector, load_inference_config,
                                     plan_in_plane_resize, slice_input_settings)
from .volume_outputs import (LESION_CSV_COLUMNS, OUTPUT_FORMATS, VOLUME_OUTPUT_ENTRIES,
                             default_output_formats, detections_to_dict,
                             parse_output_formats, prepare_volume_output_dir,
                             write_candidate_overlays, write_detections_json,
                             write_lesions_csv, write_viewer_files, write_volume_outputs)

__all__ = [
    'read_ct_volume', 'CTVolume', 'VolumeGeometry', 'VolumeInputError',
    'SUPPORTED_FILE_SUFFIXES', 'STANDARD_ORIENTATION', 'InferenceSetupError',
    'SliceInputSettings', 'SliceDetections', 'VolumeLesionDetector', 'load_inference_config',
    'slice_input_settings', 'plan_in_plane_resize', 'LinkedTrack', 'LesionCandidate',
    'link_slice_detections', 'measure_lesion_candidates', 'VolumeDetectionResult',
    'detect_lesions_in_volume', 'LESION_CSV_COLUMNS', 'detections_to_dict',
    'write_detections_json', 'write_lesions_csv', 'write_candidate_overlays',
    'write_volume_outputs', 'prepare_volume_output_dir', 'VOLUME_OUTPUT_ENTRIES',
    'DeepLesionSubvolume', 'list_deeplesion_subvolumes', 'read_deeplesion_subvolume',
    'parse_subvolume_name', 'write_deeplesion_subvolume_nifti', 'RESULTS_FILE_NAME',
    'VolumeInput', 'VolumeResultsFile', 'BatchSummary', 'batch_settings', 'candidate_boxes_3d',
    'check_unique_names', 'detect_volume_batch', 'read_volume_detections',
    'volume_detect_function',
    'volume_inputs_from_deeplesion', 'volume_inputs_from_folder',
    'volume_inputs_from_list_file', 'volume_inputs_from_paths', 'volume_name_of_path',
    'volume_record', 'CandidateRegion', 'candidate_box_3d', 'candidate_regions',
    'candidate_label_array', 'label_map_image', 'write_label_map', 'SLICER_MARKUPS_SCHEMA',
    'slicer_markups', 'write_slicer_markups', 'OUTPUT_FORMATS', 'default_output_formats',
    'parse_output_formats', 'write_viewer_files', 'SR_SERIES_NUMBER', 'build_dicom_sr',
    'read_source_series', 'write_dicom_sr', 'HtmlIndexEntry', 'write_html_index',
    'write_html_report'
]
