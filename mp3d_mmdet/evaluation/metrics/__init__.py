"""Lesion-detection metrics for mmengine evaluators (registered in ``mmdet.registry.METRICS``)."""
from .froc_inputs import check_froc_pipeline
from .froc_metric import (SIZE_SUBSETS_MM, SLICE_INTERVAL_THR_MM, FROCMetric,
                          lesion_size_subsets)
from .froc_records import (dump_records_json, load_detection_dump, load_records_json,
                           record_from_data_sample)

__all__ = [
    'FROCMetric', 'SIZE_SUBSETS_MM', 'SLICE_INTERVAL_THR_MM', 'lesion_size_subsets',
    'check_froc_pipeline', 'record_from_data_sample', 'dump_records_json', 'load_records_json',
    'load_detection_dump'
]
