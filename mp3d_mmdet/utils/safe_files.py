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
* **Only one's own files.** A writer replaces only what it wrote itself
  (:func:`check_replaceable`, the one ownership rule): a result folder lists its files and
  their SHA-256 in a hidden manifest (:data:`OUTPUT_MANIFEST`, written by
  :meth:`StagedOutputDir.commit`), a single file is recognised by its content (a check the
  writer passes); a file the user added or changed, or a path that is or holds one of the
  run's inputs, is never replaced (one line naming it). :func:`check_output_path` refuses an
  output of the wrong kind (a folder where a file goes and the reverse) before any work.
"""
import ctypes
import errno
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence

if TYPE_CHECKING:
    import numpy as np

__all__ = ['atomic_write', 'atomic_imwrite', 'atomic_sitk_write', 'replace_with_complete_file',
           'check_not_input', 'OUTPUT_MANIFEST', 'file_sha256', 'unowned_files',
           'check_replaceable', 'check_output_path', 'StagedOutputDir']

#: The hidden file of a result folder listing the files its tool wrote:
#: ``{"format_version": 1, "files": {relative path: SHA-256 hex}}``.
OUTPUT_MANIFEST = '.mp3d_outputs.json'


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
        path: the destination file; its folder must exist.
        mode: ``'w'`` (text) or ``'wb'`` (binary).
        **open_kwargs: passed to :func:`open` (``newline``, ``encoding`` ...).

    Yields:
        The open temporary file. An exception inside the block removes it and leaves
        ``path`` as it was.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    folder = osp.dirname(osp.abspath(path))
    try:
        fd, partial = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.partial',
                                       dir=folder)
    except OSError as exc:  # read-only mount, no permission ...: name the destination
        raise OSError(exc.errno, exc.strerror, path) from None
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
        path: destination, e.g. ``overlay.png``.
        image: ``(H, W)`` or ``(H, W, 3)`` BGR image OpenCV can encode.

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
        image: the image.
        path: destination, e.g. ``labels.nii.gz``.
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
        output: the path about to be written.
        inputs: paths read by the same run.
        what: how the output is named in the message (e.g. ``'--out'``).

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


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _folder_files(folder: str) -> List[str]:
    """Every file under ``folder`` (links included, folders not) as sorted relative paths,
    the manifest left out."""
    found = []
    for root, dirs, names in os.walk(folder):
        found += [osp.relpath(osp.join(root, name), folder) for name in names]
        found += [osp.relpath(osp.join(root, name), folder) for name in dirs
                  if osp.islink(osp.join(root, name))]
    return sorted(name for name in found if name != OUTPUT_MANIFEST)


def _write_output_manifest(folder: str) -> None:
    """Record every file under ``folder`` with its SHA-256 in :data:`OUTPUT_MANIFEST`."""
    files = {name: file_sha256(osp.join(folder, name)) for name in _folder_files(folder)}
    with atomic_write(osp.join(folder, OUTPUT_MANIFEST)) as handle:
        json.dump(dict(format_version=1, files=files), handle, indent=1)


def unowned_files(folder: str) -> List[str]:
    """The files under ``folder`` that its manifest (:data:`OUTPUT_MANIFEST`) does not list
    with their present content: files added or changed since the tool wrote the folder (all
    of them when there is no readable manifest); sorted relative paths."""
    try:
        with open(osp.join(folder, OUTPUT_MANIFEST), encoding='utf-8') as handle:
            recorded = json.load(handle)['files']
        if not isinstance(recorded, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        recorded = {}
    unowned = []
    for name in _folder_files(folder):
        path = osp.join(folder, name)
        if (osp.islink(path) or not osp.isfile(path) or name not in recorded
                or file_sha256(path) != recorded[name]):
            unowned.append(name)
    return unowned


def check_replaceable(path: str, inputs: Sequence[str] = (), what: str = 'output',
                      recognise: Optional[Callable[[str], bool]] = None,
                      tool: str = 'this tool') -> None:
    """The ownership rule of every writer: refuse to replace ``path`` unless it is missing or
    holds only what the writer wrote itself, and never when it is or holds one of ``inputs``.

    * ``path`` is one of ``inputs`` (after resolving links), or a folder holding one: refused.
    * a folder: each file in it must be listed, with its present content, in its manifest
      (:data:`OUTPUT_MANIFEST`, written by :meth:`StagedOutputDir.commit`); the first file
      that is not (the user's own, or changed since) is named. An empty folder is fine.
    * a file: ``recognise(path)`` must say the writer wrote it (by its content).

    Args:
        path: the output about to be replaced.
        inputs: paths the same run reads.
        what: how the output is named in messages (e.g. ``'--out'``).
        recognise: for a file: whether its content is this writer's (None: no file is).
        tool: who writes the output, for messages.

    Raises:
        ValueError: one line naming ``path`` and what is in the way.
    """
    check_not_input(path, inputs, what)
    resolved = osp.realpath(path)
    for source in inputs:
        if osp.realpath(source).startswith(resolved.rstrip(os.sep) + os.sep):
            raise ValueError(f'{what} {path} holds the input {source}; replacing it would '
                             'delete the input: choose another folder')
    if not osp.lexists(path):
        return
    if osp.isdir(path) and not osp.islink(path):
        foreign = unowned_files(path)
        if foreign:
            raise ValueError(f'{what} {path} holds {foreign[0]!r}, which {tool} did not write '
                             '(or which changed since); only its own results are replaced: '
                             'move that file away or choose another folder')
        return
    if recognise is None or not osp.isfile(path) or not recognise(path):
        raise ValueError(f'{what} {path} exists and was not written by {tool}; it is not '
                         'replaced: remove it or choose another path')


def check_output_path(path: str, what: str = 'output', kind: str = 'file') -> None:
    """Refuse, before any work, an output path of the wrong kind: a folder where a file is
    written (``kind='file'``) or a file where a folder is (``kind='folder'``), or one below
    a file.

    Raises:
        ValueError: one line naming ``path``.
    """
    if kind not in ('file', 'folder'):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    if kind == 'file' and osp.isdir(path):
        raise ValueError(f'{what} {path} is a folder; give a file name')
    if kind == 'folder' and osp.lexists(path) and not osp.isdir(path):
        raise ValueError(f'{what} {path} is a file; give a folder')
    parent = osp.dirname(osp.abspath(path))
    while parent and not osp.lexists(parent):
        parent = osp.dirname(parent)
    if parent and not osp.isdir(parent):
        raise ValueError(f'{what} {path} cannot be created: {parent} is a file')


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the platform or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)


def _restore_interrupted_commit(destination: str) -> Optional[str]:
    """Undo a commit cut short between its two renames: put the earlier results back from
    the hidden ``.<name>.*.previous`` folder when ``destination`` is missing, and delete
    such folders when it is there. Returns a warning line when results were restored."""
    pattern = osp.join(glob.escape(osp.dirname(destination)),
                       f'.{glob.escape(osp.basename(destination))}.*.previous')
    message = None
    for previous in sorted(glob.glob(pattern)):
        kept = osp.join(previous, 'results')
        if not osp.lexists(destination) and osp.isdir(kept):
            os.rename(kept, destination)
            message = (f'{destination} was missing after an interrupted run: restored the '
                       f'earlier results from {previous}')
        shutil.rmtree(previous, ignore_errors=True)
    return message


class StagedOutputDir:
    """A result folder that is replaced as a whole when a run succeeds.

    Created before the run: refuses a destination that is a file, or a non-empty folder
    unless ``overwrite`` is set -- and even then only a folder holding nothing but an
    earlier run's own results (:func:`check_replaceable`: every file listed unchanged in its
    manifest, no input of the run inside), so that a mistyped ``--out`` never deletes other
    files. It then creates the hidden staging folder ``.<name>.<random>.partial`` next to
    the destination (this also proves the destination writable). The run writes into
    :attr:`path`; :meth:`commit` records its files in the manifest and moves it into place;
    :meth:`discard` (or leaving a ``with`` block by an exception) deletes it and leaves the
    destination as it was.

    The destination always exists once it did: :meth:`commit` swaps the two folders in one
    atomic step where the system can (Linux ``renameat2``); elsewhere it renames the earlier
    results aside first, and a run killed between the two renames leaves them in a hidden
    ``.<name>.<random>.previous`` folder, which the next :class:`StagedOutputDir` of that
    destination puts back (a :class:`UserWarning`; also in :attr:`restored`).

    Args:
        destination: the result folder.
        overwrite: replace earlier results of the same tool.
        inputs: paths the run reads (never inside the destination).
        option: how the destination is named in messages (e.g. ``'--out'``).
        tool: who writes the folder, for messages.

    Raises:
        ValueError: the destination is a file, or a non-empty folder without ``overwrite``,
            or holds files the tool did not write, or holds an input.
        OSError: the parent folder cannot be created or written.
    """

    def __init__(self, destination: str, overwrite: bool = False,
                 inputs: Sequence[str] = (), option: str = 'output folder',
                 tool: str = 'this tool') -> None:
        self.destination = osp.realpath(destination)
        parent = osp.dirname(self.destination.rstrip(os.sep)) or os.sep
        self.restored = (_restore_interrupted_commit(self.destination)
                         if osp.isdir(parent) else None)
        if self.restored is not None:
            warnings.warn(self.restored, stacklevel=2)
        if osp.lexists(self.destination) and not osp.isdir(self.destination):
            raise ValueError(f'{option} {destination} exists and is not a folder')
        existing = sorted(os.listdir(self.destination)) if osp.isdir(self.destination) else []
        if existing and not overwrite:
            raise ValueError(f'{option} {destination} is not empty ({len(existing)} entries, '
                             f'e.g. {existing[0]!r}); pass --overwrite to replace the results '
                             'of an earlier run, or choose another folder')
        check_replaceable(destination, inputs, option, tool=tool)
        os.makedirs(parent, exist_ok=True)
        self.path: Optional[str] = tempfile.mkdtemp(
            prefix=f'.{osp.basename(self.destination)}.', suffix='.partial', dir=parent)

    def commit(self) -> str:
        """Record the staged files in the manifest and move them to the destination (see the
        class doc); returns the destination."""
        if self.path is None:
            raise RuntimeError('the staged output was already committed or discarded')
        _write_output_manifest(self.path)
        os.chmod(self.path, _mode_after_umask(0o777))
        staged, self.path = self.path, None
        if not (osp.isdir(self.destination) and os.listdir(self.destination)):
            os.replace(staged, self.destination)  # missing, or an empty folder
        elif _exchange(staged, self.destination):
            shutil.rmtree(staged, ignore_errors=True)  # now the earlier results
        else:
            previous = tempfile.mkdtemp(prefix=f'.{osp.basename(self.destination)}.',
                                        suffix='.previous', dir=osp.dirname(self.destination))
            os.rename(self.destination, osp.join(previous, 'results'))
            try:
                os.replace(staged, self.destination)
            except BaseException:
                os.rename(osp.join(previous, 'results'), self.destination)
                shutil.rmtree(previous, ignore_errors=True)
                shutil.rmtree(staged, ignore_errors=True)
                raise
            shutil.rmtree(previous, ignore_errors=True)
        _fsync_folder(osp.dirname(self.destination))
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
