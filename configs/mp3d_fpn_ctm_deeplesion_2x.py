# Table 3: the centre-slice transform (CTM, Fang et al. 2019) instead of the GTM.
_base_ = './mp3d_fpn_deeplesion_2x.py'
slice_neck = _base_.model.neck
slice_neck[0] = dict(type='CenterSliceTransform', num_slices=_base_.num_slices)
model = dict(neck=slice_neck)
