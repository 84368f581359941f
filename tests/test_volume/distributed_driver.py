"""``mp3d-detect-volumes`` as torchrun starts it in tests/test_volume/test_distributed.py; with
``MP3D_TEST_STOP_RANK=r`` set, process ``r`` stops when it starts its second volume: with
``KeyboardInterrupt`` as Ctrl-C would (``MP3D_TEST_STOP_WITH=interrupt``, the default), or with
a two-line ``RuntimeError`` as a failing device would (``MP3D_TEST_STOP_WITH=error``). With
``MP3D_TEST_STATUS_DIR`` set, each process writes its exit status to ``status-<rank>`` there."""
import os
import sys

import mp3d_mmdet.volume


def _stop_on_second_volume(rank: int, how: str) -> None:
    original = mp3d_mmdet.volume.volume_detect_function

    def volume_detect_function(*args, **kwargs):
        detect = original(*args, **kwargs)
        calls = []

        def stopping(volume):
            if int(os.environ['RANK']) == rank and calls:
                if how == 'error':
                    raise RuntimeError('device lost\n(second line of the message)')
                raise KeyboardInterrupt
            calls.append(volume)
            return detect(volume)
        return stopping
    mp3d_mmdet.volume.volume_detect_function = volume_detect_function


if __name__ == '__main__':
    if os.environ.get('MP3D_TEST_STOP_RANK'):
        _stop_on_second_volume(int(os.environ['MP3D_TEST_STOP_RANK']),
                               os.environ.get('MP3D_TEST_STOP_WITH', 'interrupt'))
    from mp3d_mmdet.cli import detect_volumes
    status = detect_volumes.main(sys.argv[1:])
    if os.environ.get('MP3D_TEST_STATUS_DIR'):
        with open(os.path.join(os.environ['MP3D_TEST_STATUS_DIR'],
                               f"status-{os.environ['RANK']}"), 'w') as handle:
            handle.write(str(status))
    sys.exit(status)
