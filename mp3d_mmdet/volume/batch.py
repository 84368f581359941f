"""Lesion detection over many CT volumes, into one resumable results file.

:func:`detect_volume_batch` reads each pending input (:mod:`.inputs`; the next one is read
while the network works on the current one, :mod:`.prefetch`), detects its lesions and appends
its line to the results file (:mod:`.results_file`: format and resume rules). Started by
torchrun / srun / mpirun (:func:`~mp3d_mmdet.volume.distributed.init_launcher`), the
processes share the pending volumes and write one results file (:mod:`.distributed`).
:func:`batch_settings` is what the file's header records of the model and settings, so that a
run resumed with other settings is refused.
"""
import hashlib
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ..utils.safe_files import file_sha256
from .distributed import (PartFileProgress, absorb_part_files, broadcast_from_first, dist_info,
                          gather_all, part_file_name, share_of)
from .inference.detection import detect_lesions_in_volume
from .inference.precision import resolve_precision
from .inputs import VolumeInput, check_unique_names
from .io.ct_volume import CTVolume
from .prefetch import prefetched
from .results_file import VolumeResultsFile, volume_record

__all__ = ['batch_settings', 'BatchSummary', 'DistributedBatchError', 'detect_volume_batch',
           'volume_detect_function']


def batch_settings(config: Any, checkpoint: Optional[str],
                   cfg_options: Optional[Dict[str, Any]] = None, score_thr: float = 0.5,
                   pixel_spacing: Optional[float] = None, iou_thr: float = 0.3,
                   max_gap: int = 1, min_slices: int = 1, cfg: Any = None,
                   precision: str = 'auto', device: str = 'cpu') -> Dict[str, Any]:
    """The settings recorded in (and compared with) a results file's header.

    Args:
        config: the model config as given (a path, or a loaded ``Config``).
        checkpoint: the weights file (None: the model's own initialisation).
        cfg_options: ``--cfg-options`` overrides.
        score_thr, pixel_spacing, iou_thr, max_gap, min_slices: as for
            :func:`~mp3d_mmdet.volume.detect_lesions_in_volume`.
        cfg: ``config`` already loaded with ``cfg_options``
            (:func:`~mp3d_mmdet.volume.load_inference_config`), to save loading it again.
        precision, device: the network's precision on ``device``
            (:func:`~mp3d_mmdet.volume.resolve_precision`; the resolved one is recorded).

    Returns:
        JSON-ready: ``config`` (absolute path), ``config_sha256`` (digest of the loaded
        config's ``model``, test pipeline and ``volume_inference``: what inference uses, base
        files and overrides included), ``cfg_options``, ``checkpoint`` (absolute path),
        ``checkpoint_sha256`` (of the file), ``score_thr``, ``pixel_spacing``, ``iou_thr``,
        ``max_gap``, ``min_slices``, ``precision`` (``fp32``, ``bf16`` or ``fp16``).

    Raises:
        InferenceSetupError: the config cannot be loaded, the checkpoint is missing or not a
            PyTorch checkpoint.
    """
    from mmdet.utils import get_test_pipeline_cfg

    from ..utils.checkpoint_files import CheckpointFileError, check_checkpoint_file
    from .inference.detector import InferenceSetupError, load_inference_config
    precision = resolve_precision(precision, device)
    if cfg is None:
        cfg = load_inference_config(config, cfg_options)
    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except Exception:  # reported by the detector when it is built
        pipeline = None
    used = dict(model=cfg.get('model'), test_pipeline=pipeline,
                volume_inference=cfg.get('volume_inference'))
    text = json.dumps(used, sort_keys=True, default=repr)
    checkpoint_digest = None
    if checkpoint is not None:
        try:
            check_checkpoint_file(checkpoint)
        except (FileNotFoundError, CheckpointFileError) as error:
            raise InferenceSetupError(str(error)) from None
        checkpoint_digest = file_sha256(checkpoint)
    config_path = config if isinstance(config, str) else cfg.filename
    return dict(
        config=osp.abspath(config_path) if config_path else None,
        config_sha256=hashlib.sha256(text.encode('utf-8')).hexdigest(),
        cfg_options=json.loads(json.dumps(cfg_options or {}, sort_keys=True, default=repr)),
        checkpoint=None if checkpoint is None else osp.abspath(checkpoint),
        checkpoint_sha256=checkpoint_digest, score_thr=float(score_thr),
        pixel_spacing=None if pixel_spacing is None else float(pixel_spacing),
        iou_thr=float(iou_thr), max_gap=int(max_gap), min_slices=int(min_slices),
        precision=precision)


@dataclass
class BatchSummary:
    """What :func:`detect_volume_batch` did (in a distributed batch: all processes together).

    Attributes:
        path: the results file.
        done: volumes detected and written by this run, in input order.
        skipped: inputs already in the file (not redone).
        failed: ``keep_going`` only: volumes that could not be read ->
            the one-line reason (not written; a rerun tries them again).
        not_in_inputs: volumes in the file that are not among the inputs.
        warnings: every warning reported during the run (by this process).
        is_main: this process is the batch's first (rank 0; True for one process):
            the one to report the summary and to write files about the whole batch.
    """
    path: str
    done: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    not_in_inputs: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    is_main: bool = True


class DistributedBatchError(ValueError):
    """A process of a distributed batch failed; the others' volumes are in the results
    file. The message is one line naming the failures and the volumes still missing."""


def volume_detect_function(detector: Any, batch_size: int = 4, score_thr: float = 0.5,
                           iou_thr: float = 0.3, max_gap: int = 1, min_slices: int = 1
                           ) -> Callable[[CTVolume], Any]:
    """``volume -> VolumeDetectionResult`` with a built
    :class:`~mp3d_mmdet.volume.VolumeLesionDetector` (no per-slice progress bar); its
    ``setup_warnings`` are the detector's warnings (:func:`detect_volume_batch` reports them
    once, not with every volume)."""
    def detect(volume: CTVolume) -> Any:
        return detect_lesions_in_volume(volume, detector=detector, batch_size=batch_size,
                                        score_thr=score_thr, iou_thr=iou_thr, max_gap=max_gap,
                                        min_slices=min_slices, progress=False)
    detect.setup_warnings = list(detector.warnings)  # type: ignore[attr-defined]
    return detect


def _read_with_stamp(item: VolumeInput) -> Tuple[Dict[str, int], CTVolume]:
    stamp = item.stamp()  # before reading: a change while reading is seen by the next run
    return stamp, item.read()


def _detect_share(todo: Sequence[VolumeInput], results: VolumeResultsFile,
                  make_detect: Callable[[], Callable[[CTVolume], Any]], keep_going: bool,
                  on_result: Optional[Callable[[VolumeInput, Any], None]], prefetch: int,
                  summary: BatchSummary, note: Callable[[str], None],
                  step: Callable[[], None]) -> None:
    """Detect ``todo`` in order, appending each volume's line to ``results``."""
    detect = make_detect()
    setup_warnings = list(getattr(detect, 'setup_warnings', ()))
    for message in setup_warnings:
        note(message)
    for item, read, error in prefetched(todo, _read_with_stamp, prefetch):
        if error is not None:
            if not keep_going:
                raise error
            summary.failed[item.name] = str(error)
            note(f'{item.name}: skipped, cannot be read: {error}')
            step()
            continue
        stamp, volume = read
        result = detect(volume)
        for message in result.warnings:
            if message not in setup_warnings:
                note(message)
        if on_result is not None:
            on_result(item, result)
        results.append(volume_record(item, volume, result.candidates, stamp))
        summary.done.append(item.name)
        del read, volume, result  # the next volume is read while only this one is held
        step()


def detect_volume_batch(inputs: Sequence[VolumeInput], out_dir: str, settings: Dict[str, Any],
                        make_detect: Callable[[], Callable[[CTVolume], Any]],
                        restart: bool = False, keep_going: bool = False,
                        progress: bool = True,
                        report: Optional[Callable[[str], None]] = None,
                        restart_option: str = 'restart=True',
                        on_result: Optional[Callable[[VolumeInput, Any], None]] = None,
                        prefetch: int = 1) -> BatchSummary:
    """Detect lesions in every volume not yet in ``out_dir/detections_3d.jsonl`` and append
    one line per volume as it finishes (rules: module docstring). In a distributed run
    (``torch.distributed`` initialised, e.g. by
    :func:`~mp3d_mmdet.volume.distributed.init_launcher`) every process calls it with the same
    arguments and detects its share (:mod:`.distributed`).

    Args:
        inputs: the volumes (unique names).
        out_dir: output folder (created if missing).
        settings: model settings for the header (:func:`batch_settings`).
        make_detect: ``() -> detect``, called once, before the first pending
            volume is read (not at all when every input is finished, so that a finished batch
            does not build the model); ``detect(volume: CTVolume)`` returns an object with
            ``candidates`` (list[LesionCandidate]) and ``warnings`` (list[str]), e.g.
            :func:`volume_detect_function`; the messages of its optional ``setup_warnings``
            attribute are reported once, before the first volume, and left out of the
            volumes' warnings.
        restart: start a new results file (see :class:`VolumeResultsFile`).
        keep_going: a volume that cannot be read (``VolumeInputError``, ``ValueError``
            or ``OSError`` while reading) is reported and skipped instead of stopping the run.
        progress: a tqdm bar over the volumes (finished ones counted from the start;
            distributed: on rank 0, over the whole job).
        report: called with each warning line as it happens (the volume's
            and the results file's warnings, skipped volumes); they are also collected in
            :attr:`BatchSummary.warnings`.
        restart_option: how ``restart`` is named in messages.
        on_result: called with each input and its detection result before
            the volume's line is appended (e.g. to write the volume's viewer files): an
            interruption in it leaves the volume to be redone.
        prefetch: volumes read ahead in a background thread (0: none).

    Returns:
        BatchSummary

    Raises:
        ValueError: duplicate names; see :class:`VolumeResultsFile` and
            :meth:`VolumeResultsFile.pending`; without ``keep_going``, an unreadable volume
            (finished volumes stay in the file).
        InferenceSetupError: from ``make_detect`` / ``detect``.
        DistributedBatchError: distributed, a process failed (on every process).
    """
    check_unique_names(inputs)
    rank, world = dist_info()
    summary = BatchSummary(path='', is_main=rank == 0)

    def note(message: str) -> None:
        summary.warnings.append(message)
        if report is not None:
            report(message)

    if world > 1:
        return _detect_distributed(inputs, out_dir, settings, make_detect, restart, keep_going,
                                   progress, restart_option, on_result, prefetch, summary,
                                   note, rank, world)
    with VolumeResultsFile(out_dir, settings, restart, restart_option) as results:
        summary.path = results.path
        for message in results.warnings + absorb_part_files(results, out_dir, restart):
            note(message)
        todo = _pending(results, inputs, summary, note)
        if todo:
            bar = tqdm(total=len(inputs), initial=len(inputs) - len(todo), desc='volumes',
                       unit='volume', disable=not progress, dynamic_ncols=True)
            try:
                _detect_share(todo, results, make_detect, keep_going, on_result, prefetch,
                              summary, note, lambda: bar.update(1))
            finally:
                bar.close()
        results.finish(inputs)
    return summary


def _pending(results: VolumeResultsFile, inputs: Sequence[VolumeInput], summary: BatchSummary,
             note: Callable[[str], None]) -> List[VolumeInput]:
    """:meth:`VolumeResultsFile.pending`, its warnings noted, ``skipped`` and
    ``not_in_inputs`` filled in."""
    known = len(results.warnings)
    todo = results.pending(inputs)
    for message in results.warnings[known:]:
        note(message)
    names = {item.name for item in inputs}
    summary.skipped = [item.name for item in inputs if item.name in results.records]
    summary.not_in_inputs = [name for name in results.records if name not in names]
    return todo


def _detect_distributed(inputs: Sequence[VolumeInput], out_dir: str, settings: Dict[str, Any],
                        make_detect: Callable[[], Callable[[CTVolume], Any]], restart: bool,
                        keep_going: bool, progress: bool, restart_option: str,
                        on_result: Optional[Callable[[VolumeInput, Any], None]],
                        prefetch: int, summary: BatchSummary, note: Callable[[str], None],
                        rank: int, world: int) -> BatchSummary:
    """:func:`detect_volume_batch` in process ``rank`` of ``world`` (:mod:`.distributed`)."""
    results = None
    plan: Dict[str, Any] = {}
    try:
        if rank == 0:
            try:
                results = VolumeResultsFile(out_dir, settings, restart, restart_option)
                for message in results.warnings + absorb_part_files(results, out_dir, restart):
                    note(message)
                todo = _pending(results, inputs, summary, note)
                plan = dict(path=results.path, todo=[item.name for item in todo],
                            skipped=summary.skipped, not_in_inputs=summary.not_in_inputs)
            except Exception as error:
                plan = dict(error=error)
                raise
            finally:
                plan = broadcast_from_first(plan)
        else:
            plan = broadcast_from_first(plan)
            if 'path' not in plan:
                raise plan.get('error') or DistributedBatchError(
                    'process 0 stopped before opening the results file')
        summary.path, summary.skipped = plan['path'], plan['skipped']
        summary.not_in_inputs = plan['not_in_inputs']
        by_name = {item.name: item for item in inputs}
        mine = share_of([by_name[name] for name in plan['todo']], rank, world)
        problem = None
        if plan['todo']:
            problem = _detect_part(mine, out_dir, settings, make_detect, keep_going, on_result,
                                   prefetch, summary, note, rank, world, progress,
                                   len(inputs) - len(plan['todo']), len(inputs))
        states = gather_all(dict(done=summary.done, failed=summary.failed, problem=problem))
        merge_error = None
        if rank == 0:
            try:
                absorb_part_files(results, out_dir, restart=False)
                results.finish(inputs)
            except Exception as error:
                merge_error = f'merging the part files into {results.path}: {error}'
        merge_error = broadcast_from_first(merge_error)
    finally:
        if results is not None:
            results.close()
    done = {name for state in states for name in state['done']}
    summary.done = [name for name in plan['todo'] if name in done]
    summary.failed = {name: reason for state in states for name, reason in
                      state['failed'].items()}
    problems = [f"process {r}: {state['problem']}" for r, state in enumerate(states)
                if state['problem']] + ([merge_error] if merge_error else [])
    if problems:
        missing = [name for name in plan['todo'] if name not in done and
                   name not in summary.failed]
        raise DistributedBatchError(
            f"{'; '.join(problems)}; {len(missing)} volume(s) not detected "
            f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}): rerun the same "
            'command to complete them')
    return summary


def _one_line(error: Exception) -> str:
    """``<type>: <message>`` of ``error``, its message's lines joined by spaces."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return ': '.join([type(error).__name__] + ([' '.join(lines)] if lines else []))


def _detect_part(mine: Sequence[VolumeInput], out_dir: str, settings: Dict[str, Any],
                 make_detect: Callable[[], Callable[[CTVolume], Any]], keep_going: bool,
                 on_result: Optional[Callable[[VolumeInput, Any], None]], prefetch: int,
                 summary: BatchSummary, note: Callable[[str], None], rank: int, world: int,
                 progress: bool, initial: int, total: int) -> Optional[str]:
    """Detect this process's share into its part file; the one-line reason it stopped
    early (an exception other than KeyboardInterrupt), or None."""
    bar = tqdm(total=total, initial=initial, desc='volumes', unit='volume',
               disable=not progress or rank != 0, dynamic_ncols=True)
    monitor = PartFileProgress(out_dir, world, lambda count: bar.update(
        initial + count - bar.n) if initial + count > bar.n else None)
    try:
        with VolumeResultsFile(out_dir, settings, restart=True,
                               file_name=part_file_name(rank), lock=False) as part, \
                monitor.running():
            if mine:
                _detect_share(mine, part, make_detect, keep_going, on_result, prefetch,
                              summary, note, lambda: None)
    except Exception as error:  # reported by every process, after the others finished
        reason = _one_line(error)
        note(f'process {rank}: {reason}')
        return reason
    finally:
        if rank == 0:
            bar.update(max(0, initial + monitor.lines() + len(summary.failed) - bar.n))
        bar.close()
    return None
