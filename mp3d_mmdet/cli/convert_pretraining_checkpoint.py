"""Turn a COCO 3-slice pre-training checkpoint into the initialisation of an N-slice detector.

The input is a checkpoint of ``configs/mp3d_fpn_coco_pretrain_3slice_6x.py`` (an MP3D FPN
Faster R-CNN, 3 slices = R, G, B, 80 classes). The output initialises an N-slice DeepLesion
MP3D FPN through ``load_from`` (e.g. ``configs/mp3d_fpn_deeplesion_2x_coco-pretrain.py``):

* carried unchanged: backbone, FPN, RPN and the RoI head's shared fully connected layers;
* adapted: the GTM weights ``neck.0.convs.<i>.weight`` (C, 3, 1, 1) -> (C, N, 1, 1), linear
  resampling along the slice axis with aligned ends, scaled by 3/N (the sum over slices is
  kept; see :mod:`mp3d_mmdet.converters.pretraining`);
* dropped: the 80-class classifier and box regressor ``roi_head.bbox_head.fc_cls/fc_reg``
  (the lesion detector initialises its own; they are the only keys it reports missing).

A table of what was carried, adapted and dropped is printed.

Example::

    mp3d-convert-pretraining-checkpoint \\
        work_dirs/mp3d_fpn_coco_pretrain_3slice_6x/epoch_72.pth \\
        work_dirs/pretrained/mp3d_fpn_coco_3slice_to_9slice.pth --num-slices 9
"""
import argparse
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from .converter_command import ConverterCommand

if TYPE_CHECKING:
    from mp3d_mmdet.converters import ConversionReport

PROG = 'mp3d-convert-pretraining-checkpoint'


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--num-slices', type=int, default=9,
                        help='slice count N of the target detector (odd, >= 1)')


def _convert(args: argparse.Namespace) -> 'ConversionReport':
    from mp3d_mmdet.converters import convert_pretrained_checkpoint
    return convert_pretrained_checkpoint(args.src, args.dst, args.num_slices)


COMMAND = ConverterCommand(
    prog=PROG, description='Convert a COCO 3-slice MP3D FPN pre-training checkpoint into the '
    'initialisation of an N-slice lesion detector',
    src_help='mmengine checkpoint of the COCO pre-training', add_options=_add_options,
    convert=_convert, source_label=lambda report: f'{report.backbone} FPN')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return COMMAND.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the conversion and print its table; returns the exit status."""
    return COMMAND.main(argv)


if __name__ == '__main__':
    sys.exit(main())
