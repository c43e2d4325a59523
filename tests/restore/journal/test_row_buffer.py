"""What the sync's reading thread may hold ahead of the store: bounded in rows and in bytes, however wide rows are."""

import threading

from restore.journal.sync import RowBuffer


def rows(count: int, width: int) -> list[tuple[int, bytes]]:
    return [(lsn, b"x" * width) for lsn in range(count)]


def test_the_buffer_waits_for_room_in_bytes_and_in_rows() -> None:
    buffer, stop = RowBuffer(max_rows=100, max_bytes=10_000), threading.Event()
    assert buffer.put(rows(2, 4_000), stop) and buffer.bytes == 8_000
    waiting = threading.Thread(target=buffer.put, args=(rows(1, 4_000), stop))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and buffer.bytes == 8_000  # 12 kB would pass the limit
    assert len(buffer.get()) == 2  # type: ignore[arg-type]
    waiting.join(5)
    assert not waiting.is_alive() and buffer.bytes == 4_000

    assert buffer.put(rows(99, 1), stop) is True  # 100 rows held: the next list waits for rows, not bytes
    full = threading.Thread(target=buffer.put, args=(rows(1, 1), stop))
    full.start()
    full.join(0.3)
    assert full.is_alive()
    stop.set()
    full.join(5)
    assert not full.is_alive() and buffer.rows == 100  # a stopped sync drops what was waiting


def test_one_list_wider_than_the_limit_still_passes_alone() -> None:
    buffer, stop = RowBuffer(max_rows=10, max_bytes=1_000), threading.Event()
    assert buffer.put(rows(50, 100), stop)
    assert buffer.get() is not None and buffer.rows == 0
    assert buffer.put(None, stop) and buffer.get() is None
