"""The write-ahead log on real files: group commit, rotation, torn tails."""
import asyncio

from collector.wal import SIGNAL_METRICS, SIGNAL_TRACES, WriteAheadLog


def test_acknowledged_records_replay_in_order(tmp_path):
    async def main():
        wal = WriteAheadLog(tmp_path)
        futs = [wal.append(SIGNAL_TRACES, f"r{i}".encode(), i) for i in range(100)]
        await asyncio.gather(*futs)
        assert wal.syncs < 100  # group commit: fewer fsyncs than records
        wal.close()

    asyncio.run(main())
    again = WriteAheadLog(tmp_path)
    recs = list(again.replay(after=0))
    assert [r.payload for r in recs] == [f"r{i}".encode() for i in range(100)]
    assert [r.received_ns for r in recs] == list(range(100))
    again.close()


def test_rotate_and_drop_through(tmp_path):
    async def main():
        wal = WriteAheadLog(tmp_path)
        await wal.append(SIGNAL_TRACES, b"a", 1)
        first = wal.rotate()
        await wal.append(SIGNAL_METRICS, b"b", 2)
        assert [r.payload for r in wal.replay(after=0)] == [b"a"]  # the open segment is not replayed
        assert [r.payload for r in wal.replay(after=first)] == []
        wal.drop_through(first)
        assert first not in wal.segments()
        wal.close()
        return first

    first = asyncio.run(main())
    again = WriteAheadLog(tmp_path)
    assert [(r.signal, r.payload) for r in again.replay(after=first)] == [(SIGNAL_METRICS, b"b")]
    again.close()


def test_torn_tail_is_skipped_and_counted(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.append_sync(SIGNAL_TRACES, b"good", 1)
    wal.append_sync(SIGNAL_TRACES, b"also good", 2)
    seg = wal.segment
    wal.close()
    path = tmp_path / f"{seg:016d}.wal"
    data = path.read_bytes()
    path.write_bytes(data[:-4])  # crash in the middle of the last record
    again = WriteAheadLog(tmp_path)
    assert [r.payload for r in again.replay(after=0)] == [b"good"]
    assert again.torn_records == 1
    again.close()


def test_corrupt_record_stops_that_segment(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.append_sync(SIGNAL_TRACES, b"good", 1)
    wal.append_sync(SIGNAL_TRACES, b"flipped", 2)
    seg = wal.segment
    wal.close()
    path = tmp_path / f"{seg:016d}.wal"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    again = WriteAheadLog(tmp_path)
    assert [r.payload for r in again.replay(after=0)] == [b"good"]
    assert again.torn_records == 1
    again.close()
