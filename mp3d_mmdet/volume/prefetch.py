"""Reading the next volumes while the network works on the current one.

:func:`prefetched` reads items in one background thread, ``ahead`` items in front of the
consumer, so that SimpleITK's reading, reorienting and resampling (which release the GIL)
overlap inference. Memory stays bounded: besides the volume the consumer works on, at most
``ahead`` volumes are read or being read (the consumer drops its volume before asking for the
next one).
"""
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Iterable, Iterator, Optional, Tuple, TypeVar

from .io.ct_volume import VolumeInputError

__all__ = ['READ_ERRORS', 'prefetched']

#: Exceptions of reading one volume that :func:`prefetched` hands to the consumer.
READ_ERRORS = (VolumeInputError, ValueError, OSError)

Item = TypeVar('Item')
Value = TypeVar('Value')


def prefetched(items: Iterable[Item], read: Callable[[Item], Value], ahead: int = 1
               ) -> Iterator[Tuple[Item, Optional[Value], Optional[Exception]]]:
    """``(item, read(item), None)`` for each item in order, ``(item, None, error)`` where
    ``read`` raised one of :data:`READ_ERRORS` (any other exception is raised here).

    Args:
        items: what to read, in order.
        read: reads one item (called in a background thread when ``ahead >= 1``).
        ahead: items read in advance (0: each read when asked for, in the calling thread).

    Closing the iterator (or an exception in the consumer) cancels the reads not started;
    one already running finishes in its thread.
    """
    iterator = iter(items)
    if ahead < 1:
        for item in iterator:
            try:
                value = read(item)
            except READ_ERRORS as error:
                yield item, None, error
                continue
            yield item, value, None
            value = None
        return
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix='volume-reader')
    queue: Deque[Tuple[Item, Future]] = deque()

    def submit_next() -> None:
        for item in iterator:
            queue.append((item, executor.submit(read, item)))
            return

    try:
        for _ in range(ahead):
            submit_next()
        while queue:
            item, future = queue.popleft()
            error: Optional[Exception] = None
            try:
                value = future.result()
            except READ_ERRORS as caught:
                value, error = None, caught
            future = None
            submit_next()
            yield item, value, error
            value = None
    finally:
        for _, pending in queue:
            pending.cancel()
        executor.shutdown(wait=False)
