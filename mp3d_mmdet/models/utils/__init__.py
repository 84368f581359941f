"""Model utilities: 2D -> 3D weight inflation, slice-count adaptation, MAC counting."""
from .op_counter import MacCounter, count_macs
from .weight_inflation import (Inflated2DPretrained, adapt_group_transform_weights,
                               canonical_resnet2d_keys, inflate_2d_state_dict)

__all__ = [
    'MacCounter', 'count_macs', 'Inflated2DPretrained', 'adapt_group_transform_weights',
    'canonical_resnet2d_keys', 'inflate_2d_state_dict'
]
