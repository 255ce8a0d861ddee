"""A tqdm progress bar fed by the services' ``progress(done, total)`` callbacks."""

from __future__ import annotations

from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(description: str, *, stream, disable: bool = False):
    bar = tqdm(total=0, desc=description, unit="candle", file=stream, disable=disable, leave=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
