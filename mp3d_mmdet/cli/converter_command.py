"""The command both checkpoint converters are: ``SRC DST`` and the converter's own options,
one conversion, then a header line and the table of what was renamed, carried, adapted and
dropped (:class:`~mp3d_mmdet.converters.ConversionReport`)."""
import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from .common import make_parser, run_command

if TYPE_CHECKING:
    from mp3d_mmdet.converters import ConversionReport


@dataclass(frozen=True)
class ConverterCommand:
    """One checkpoint converter command.

    Attributes:
        prog: the command's name.
        description: the first line of its help.
        src_help: the help of the ``src`` argument (what checkpoint it converts).
        add_options: adds the converter's own options to the parser.
        convert: runs the conversion of the parsed arguments (``src``, ``dst`` and the
            options), writes ``dst`` and returns the report.
        source_label: what the header line calls the source model, from the report.
    """

    prog: str
    description: str
    src_help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    convert: Callable[[argparse.Namespace], 'ConversionReport']
    source_label: Callable[['ConversionReport'], str]

    def parse_args(self, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
        """The parsed command line (exits with status 2 on unusable arguments)."""
        parser = make_parser(self.prog, self.description)
        parser.add_argument('src', help=self.src_help)
        parser.add_argument('dst', help='output checkpoint (its folder is created)')
        self.add_options(parser)
        return parser.parse_args(argv)

    def main(self, argv: Optional[Sequence[str]] = None) -> int:
        """Convert and print the header and the table; returns the exit status
        (:func:`~mp3d_mmdet.cli.common.run_command`)."""
        args = self.parse_args(argv)
        return run_command(self.prog, lambda: self._run(args))

    def _run(self, args: argparse.Namespace) -> None:
        report = self.convert(args)
        classes = f', {report.num_classes} classes' if report.num_classes is not None else ''
        print(f'{args.src}: {self.source_label(report)}, GTM slices {report.source_num_slices}'
              f'{classes} -> {args.dst}: {report.num_slices} slices')
        print(report.table())
