"""What a volume detection writes: result files, overlays and files for viewers."""
from .regions import CandidateRegion, candidate_box_3d, candidate_regions
from .writer import (LESION_CSV_COLUMNS, OUTPUT_FORMATS, VOLUME_OUTPUT_ENTRIES,
                     default_output_formats, detections_to_dict, parse_output_formats,
                     prepare_volume_output_dir, write_candidate_overlays, write_detections_json,
                     write_lesions_csv, write_viewer_files, write_volume_outputs,
                     writable_output_formats)
from .slicer_markups import SLICER_MARKUPS_SCHEMA, slicer_markups, write_slicer_markups
from .label_map import (LABEL_COLORS, candidate_label_array, itksnap_label_descriptions,
                        label_color, label_map_image, slicer_color_table, write_label_map)
from .dicom_sr import (CORNERSTONE_RECTANGLE, SR_SERIES_NUMBER, build_dicom_sr, dicom_sr_problem,
                       read_source_series, write_dicom_sr)
from .html_slices import (DISPLAY_CODE_KNOTS, JPEG_QUALITIES, MAX_SLICE_SIDE, SLICE_BUDGET,
                          WINDOW_PRESETS, ReportSlices, display_code_hu, encode_report_slices,
                          hu_to_display_code)
from .html_report import BOX_RGB, SELECTED_RGB, input_window, render_html_report, write_html_report
from .html_index import (INDEX_GENERATOR, HtmlIndexEntry, check_html_index_path,
                         render_html_index, write_html_index)

__all__ = [
    'CandidateRegion', 'candidate_box_3d', 'candidate_regions', 'LESION_CSV_COLUMNS',
    'VOLUME_OUTPUT_ENTRIES', 'OUTPUT_FORMATS', 'default_output_formats', 'parse_output_formats',
    'detections_to_dict', 'write_detections_json', 'write_lesions_csv', 'write_candidate_overlays',
    'write_viewer_files', 'prepare_volume_output_dir', 'write_volume_outputs',
    'SLICER_MARKUPS_SCHEMA', 'slicer_markups', 'write_slicer_markups', 'candidate_label_array',
    'label_map_image', 'write_label_map', 'write_dicom_sr', 'build_dicom_sr', 'read_source_series',
    'SR_SERIES_NUMBER', 'MAX_SLICE_SIDE', 'JPEG_QUALITIES', 'SLICE_BUDGET', 'DISPLAY_CODE_KNOTS',
    'WINDOW_PRESETS', 'ReportSlices', 'display_code_hu', 'hu_to_display_code', 'input_window',
    'BOX_RGB', 'SELECTED_RGB',
    'HtmlIndexEntry', 'encode_report_slices', 'render_html_report', 'write_html_report',
    'render_html_index', 'write_html_index', 'INDEX_GENERATOR', 'check_html_index_path',
    'writable_output_formats', 'CORNERSTONE_RECTANGLE',
    'dicom_sr_problem', 'LABEL_COLORS', 'label_color', 'slicer_color_table',
    'itksnap_label_descriptions'
]
