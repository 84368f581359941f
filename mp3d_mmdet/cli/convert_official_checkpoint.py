"""Convert a checkpoint of the official MP3D code (e.g. the authors' COCO-pretrained
``mp3d63-d720bda1.pth``) into this plugin's MP3D FPN layout.

* renamed: the backbone's official names (``conv1_custom``, ``layerS.B.conv1..4`` /
  ``norm_1..4``) to the plugin's, the GTM ``backbone.groupconv_<i>`` to
  ``neck.0.convs.<i-1>``, the FPN ``neck.*`` to ``neck.1.*``;
* carried: the RPN and RoI heads (mmdet's names in both code bases);
* adapted: the GTM, from the file's slice count to ``--num-slices`` (linear resampling along
  the slice axis, ends aligned, scaled by D_old/D_new; the same count leaves it unchanged);
* dropped: the RoI classifier and box regressor, when ``--num-classes`` differs from the
  file's.

A table of what was renamed, carried, adapted and dropped is printed; rules and accepted
inputs: :mod:`mp3d_mmdet.converters.official_mp3d`.

Example (the paper's Table 1 recipe, docs/pretraining.md)::

    mp3d-convert-official-checkpoint checkpoints/mp3d63-d720bda1.pth \\
        checkpoints/mp3d63_official_9slice_1class.pth --num-slices 9 --num-classes 1
"""
import argparse
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from .converter_command import ConverterCommand

if TYPE_CHECKING:
    from mp3d_mmdet.converters import ConversionReport

PROG = 'mp3d-convert-official-checkpoint'


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--num-slices', type=int, default=None,
                        help="slice count of the target detector (odd); default: the file's")
    parser.add_argument('--num-classes', type=int, default=None,
                        help="classes of the target detector; default: the file's")


def _convert(args: argparse.Namespace) -> 'ConversionReport':
    from mp3d_mmdet.converters import convert_official_checkpoint
    return convert_official_checkpoint(args.src, args.dst, args.num_slices, args.num_classes)


COMMAND = ConverterCommand(
    prog=PROG, description='Convert an official MP3D checkpoint into the layout of this '
    "plugin's MP3D FPN", src_help='official MP3D checkpoint (mmdet 2.x) or state dict',
    add_options=_add_options, convert=_convert, source_label=lambda report: 'official MP3D')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return COMMAND.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the conversion and print its table; returns the exit status."""
    return COMMAND.main(argv)


if __name__ == '__main__':
    sys.exit(main())
