"""Writing results so that nothing is half-written, lost, or written over an input.

Three rules, used by every tool and writer of the plugin:

* **Whole files or none.** :func:`atomic_write` writes to a hidden temporary file in the
  destination's folder (``.<name>.<random>.partial``), flushes it to disk and renames it
  into place (``os.replace``, atomic on POSIX file systems). A crash, a full disk or a kill
  leaves either the previous file or the new one, never a truncated one; an interrupted
  write removes its temporary file where it can (a SIGKILL leaves a hidden ``.partial``).
* **Whole result folders or none.** :class:`StagedOutputDir` is created before any long
  computation (so that an unusable destination fails at once), collects a run's files in a
  hidden sibling folder and moves it into place when the run succeeded: a re-run into the
  same folder leaves exactly the new run's files, and a failed run leaves the earlier
  results untouched.
* **Never over an input.** :func:`check_not_input` refuses an output path that is, or
  reaches through links, one of the inputs.
"""
import os
import os.path as osp
import shutil
import tempfile
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Collection, Iterator, Optional, Sequence

if TYPE_CHECKING:
    import numpy as np

__all__ = ['atomic_write', 'atomic_imwrite', 'atomic_sitk_write', 'replace_with_complete_file',
           'check_not_input', 'StagedOutputDir']


def _mode_after_umask(mode: int) -> int:
    """``mode`` minus the process umask: what ``open(path, 'w')`` (``0o666``) or
    ``os.mkdir`` (``0o777``) would give a new file or folder."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _fsync_folder(folder: str) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_with_complete_file(partial: str, path: str) -> None:
    """Flush the finished file ``partial`` to disk, then rename it to ``path`` (atomic).

    For writers that cannot write through :func:`atomic_write` (e.g. mmengine's checkpoint
    saving, which opens the file itself): they write to ``partial`` in ``path``'s folder.
    """
    with open(partial, 'rb') as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)
    _fsync_folder(osp.dirname(osp.abspath(path)))


@contextmanager
def atomic_write(path: str, mode: str = 'w', **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit, rename it to ``path``.

    Args:
        path (str): the destination file; its folder must exist.
        mode (str): ``'w'`` (text) or ``'wb'`` (binary).
        **open_kwargs: passed to :func:`open` (``newline``, ``encoding`` ...).

    Yields:
        IO: the open temporary file. An exception inside the block removes it and leaves
        ``path`` as it was.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    folder = osp.dirname(osp.abspath(path))
    fd, partial = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.partial',
                                   dir=folder)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, _mode_after_umask(0o666))
        os.replace(partial, path)
        _fsync_folder(folder)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise


def atomic_imwrite(path: str, image: 'np.ndarray') -> None:
    """Encode an image with OpenCV (format from the file extension) and write it whole.

    Args:
        path (str): destination, e.g. ``overlay.png``.
        image (np.ndarray): ``(H, W)`` or ``(H, W, 3)`` BGR image OpenCV can encode.

    Raises:
        OSError: the image cannot be encoded for that extension, or the write fails.
    """
    import cv2
    ok, encoded = cv2.imencode(osp.splitext(path)[1] or '.png', image)
    if not ok:
        raise OSError(f'could not encode an image for {path}')
    with atomic_write(path, 'wb') as handle:
        handle.write(encoded.tobytes())


def atomic_sitk_write(image: object, path: str) -> None:
    """Write a SimpleITK image whole (format from the extension, ``.nii.gz`` compressed).

    SimpleITK picks the format from the file name, so the temporary file keeps the
    destination's extension: ``.<name>.<pid>.partial<ext>`` in the same folder, renamed into
    place when complete (removed if the write fails).

    Args:
        image (SimpleITK.Image): the image.
        path (str): destination, e.g. ``labels.nii.gz``.
    """
    import SimpleITK as sitk
    folder, name = osp.split(osp.abspath(path))
    lower = name.lower()
    suffix = next((s for s in ('.nii.gz', '.nii', '.mha', '.nrrd') if lower.endswith(s)),
                  osp.splitext(name)[1])
    partial = osp.join(folder, f'.{name}.{os.getpid()}.partial{suffix}')
    try:
        sitk.WriteImage(image, partial, useCompression=suffix == '.nii.gz')
        replace_with_complete_file(partial, path)
    except BaseException:
        if osp.exists(partial):
            os.unlink(partial)
        raise


def check_not_input(output: str, inputs: Sequence[str], what: str = 'output') -> None:
    """Raise if ``output`` is one of ``inputs``: the same path after resolving links (folder
    or file symlinks) or, where both exist, the same file (hard links).

    Args:
        output (str): the path about to be written.
        inputs (Sequence[str]): paths read by the same run.
        what (str): how the output is named in the message (e.g. ``'--out'``).

    Raises:
        ValueError: one line naming both paths.
    """
    resolved = osp.realpath(output)
    for source in inputs:
        same = resolved == osp.realpath(source)
        if not same and osp.exists(output) and osp.exists(source):
            same = osp.samefile(output, source)
        if same:
            raise ValueError(f'{what} {output} is the input {source} (the same file after '
                             'resolving links); choose another path')


class StagedOutputDir:
    """A result folder that is replaced as a whole when a run succeeds.

    Created before the run: refuses a destination that is a file, or a non-empty folder
    unless ``overwrite`` is set -- and even then only a folder holding nothing but
    ``known_entries`` (what an earlier run of the same tool writes), so that a mistyped
    ``--out`` never deletes other files. It then creates the hidden staging folder
    ``.<name>.<random>.partial`` next to the destination (this also proves the destination
    writable). The run writes into :attr:`path`; :meth:`commit` moves it into place
    (renaming any earlier results aside first and deleting them afterwards); :meth:`discard`
    (or leaving a ``with`` block by an exception) deletes it and leaves the destination as
    it was.

    Args:
        destination (str): the result folder.
        overwrite (bool): replace earlier results of the same tool.
        known_entries (Collection[str]): top-level names the tool writes.
        option (str): how the destination is named in messages (e.g. ``'--out'``).

    Raises:
        ValueError: the destination is a file, or a non-empty folder without ``overwrite``,
            or holds entries the tool does not write.
        OSError: the parent folder cannot be created or written.
    """

    def __init__(self, destination: str, overwrite: bool = False,
                 known_entries: Collection[str] = (), option: str = 'output folder') -> None:
        self.destination = osp.realpath(destination)
        if osp.lexists(self.destination) and not osp.isdir(self.destination):
            raise ValueError(f'{option} {destination} exists and is not a folder')
        existing = sorted(os.listdir(self.destination)) if osp.isdir(self.destination) else []
        if existing and not overwrite:
            raise ValueError(f'{option} {destination} is not empty ({len(existing)} entries, '
                             f'e.g. {existing[0]!r}); pass --overwrite to replace the results '
                             'of an earlier run, or choose another folder')
        foreign = [name for name in existing if name not in set(known_entries)]
        if foreign:
            raise ValueError(f'{option} {destination} holds {foreign[0]!r}, which this tool '
                             'does not write; --overwrite only replaces an earlier run\'s '
                             'results: choose another folder')
        parent = osp.dirname(self.destination.rstrip(os.sep)) or os.sep
        os.makedirs(parent, exist_ok=True)
        self.path: Optional[str] = tempfile.mkdtemp(
            prefix=f'.{osp.basename(self.destination)}.', suffix='.partial', dir=parent)

    def commit(self) -> str:
        """Move the staged results to the destination; returns the destination."""
        if self.path is None:
            raise RuntimeError('the staged output was already committed or discarded')
        os.chmod(self.path, _mode_after_umask(0o777))
        previous = None
        if osp.isdir(self.destination) and os.listdir(self.destination):
            previous = tempfile.mkdtemp(prefix=f'.{osp.basename(self.destination)}.',
                                        suffix='.previous', dir=osp.dirname(self.destination))
            os.rename(self.destination, osp.join(previous, 'results'))
        os.replace(self.path, self.destination)  # replaces an empty folder too
        self.path = None
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        return self.destination

    def discard(self) -> None:
        """Delete the staged results (the destination is left as it was)."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None

    def __enter__(self) -> 'StagedOutputDir':
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self.discard()
