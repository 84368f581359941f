"""``mp3d-detect-volumes`` as torchrun starts it in tests/test_volume/test_distributed.py; with
``MP3D_TEST_STOP_RANK=r`` set, process ``r`` is interrupted (KeyboardInterrupt) when it starts
its second volume, as Ctrl-C would."""
import os
import sys

import mp3d_mmdet.volume


def _stop_on_second_volume(rank: int) -> None:
    original = mp3d_mmdet.volume.volume_detect_function

    def volume_detect_function(*args, **kwargs):
        detect = original(*args, **kwargs)
        calls = []

        def stopping(volume):
            if int(os.environ['RANK']) == rank and calls:
                raise KeyboardInterrupt
            calls.append(volume)
            return detect(volume)
        return stopping
    mp3d_mmdet.volume.volume_detect_function = volume_detect_function


if __name__ == '__main__':
    if os.environ.get('MP3D_TEST_STOP_RANK'):
        _stop_on_second_volume(int(os.environ['MP3D_TEST_STOP_RANK']))
    from mp3d_mmdet.cli import detect_volumes
    sys.exit(detect_volumes.main(sys.argv[1:]))
