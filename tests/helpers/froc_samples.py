"""Hand-made detection results for the FROC tests: mmdet data samples with ground truth in
``instances`` (as DeepLesionDataset packs it) and predictions in ``pred_instances``."""
from typing import List, Sequence

import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData


def lesion(box: Sequence[float], lesion_type: int = 4, diameter: float = 12.0,
           ignore: int = 0) -> dict:
    """One ground-truth lesion: ``box`` x1, y1, x2, y2 in pixels, DeepLesion type, long
    diameter in mm, ``ignore`` = 1 for an ignored (e.g. noisy) lesion."""
    return dict(bbox=list(box), bbox_label=0, ignore_flag=ignore, lesion_type=lesion_type,
                long_diameter_mm=diameter)


def data_sample(img_id: int, interval: float, instances: List[dict],
                detections: List[Sequence[float]]) -> DetDataSample:
    """A 512 x 512 test image ``{img_id:03d}.png`` with slice interval ``interval`` mm, the
    ground truth ``instances`` and ``detections`` as ``[x1, y1, x2, y2, score]`` rows."""
    sample = DetDataSample()
    sample.set_metainfo(dict(img_id=img_id, img_path=f'{img_id:03d}.png', ori_shape=(512, 512),
                             instances=instances, slice_interval=interval))
    pred = InstanceData()
    pred.bboxes = torch.tensor([d[:4] for d in detections], dtype=torch.float32).reshape(-1, 4)
    pred.scores = torch.tensor([d[4] for d in detections], dtype=torch.float32)
    pred.labels = torch.zeros(len(detections), dtype=torch.long)
    sample.pred_instances = pred
    return sample
