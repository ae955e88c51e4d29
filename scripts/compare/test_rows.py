"""Self-check of the normalisation and the check (run by run.py before measuring anything)."""

import json
import tempfile
import unittest
from pathlib import Path

import rows


def write(path, objects):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))


class RowsTest(unittest.TestCase):
    def test_each_engine_shape_reads_as_the_same_rows(self):
        want = [(1_700_000_000_000, "k1", 2), (1_700_000_001_000, "k2", 1)]
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            # Tideflow: one file, window_end beside window_start.
            write(tmp / "tideflow.jsonl", [
                {"key": "k2", "window_start": 1_700_000_001_000, "window_end": 1_700_000_002_000, "count": 1},
                {"key": "k1", "window_start": 1_700_000_000_000, "window_end": 1_700_000_001_000, "count": 2},
            ])
            # Spark: part files, metadata and checksums beside them.
            write(tmp / "spark" / "part-00000.json", [{"window_start": 1_700_000_001_000, "key": "k2", "count": 1}])
            write(tmp / "spark" / "part-00001.json", [{"window_start": 1_700_000_000_000, "key": "k1", "count": 2}])
            write(tmp / "spark" / "_spark_metadata" / "0", [{"version": 1}])
            write(tmp / "spark" / ".part-00000.json.crc", [{"crc": 0}])
            (tmp / "spark" / "_SUCCESS").write_text("")
            # Flink: a timestamp string, read as UTC.
            write(tmp / "flink" / "part-1-0", [
                {"window_start": "2023-11-14 22:13:20", "key": "k1", "count": 2},
                {"window_start": "2023-11-14 22:13:21.000", "key": "k2", "count": 1},
            ])
            # Pathway: time and diff columns.
            write(tmp / "pathway.jsonl", [
                {"window_start": 1_700_000_000_000, "key": "k1", "count": 2, "time": 2, "diff": 1},
                {"window_start": 1_700_000_001_000, "key": "k2", "count": 1, "time": 2, "diff": 1},
            ])
            for name in ["tideflow.jsonl", "spark", "flink", "pathway.jsonl"]:
                self.assertEqual(rows.read_rows(tmp / name), want, name)

    def test_a_retraction_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "out.jsonl"
            write(path, [{"window_start": 0, "key": "k1", "count": 2, "diff": -1}])
            with self.assertRaises(rows.Mismatch):
                rows.read_rows(path)

    def test_check_names_the_difference(self):
        expected = [(0, "k1", 2), (0, "k2", 1)]
        rows.check(list(expected), expected, "same")
        for actual, words in [
            ([(0, "k1", 2)], "1 expected rows missing"),
            ([(0, "k1", 2), (0, "k2", 2)], "1 unexpected rows"),
            ([(0, "k1", 2), (0, "k1", 2), (0, "k2", 1)], "written more than once"),
        ]:
            with self.assertRaises(rows.Mismatch) as caught:
                rows.check(sorted(actual), expected, "engine")
            self.assertIn(words, str(caught.exception))

    def test_closed_by_watermark_drops_only_the_windows_still_open(self):
        expected = [(0, "k1", 1), (1_000, "k1", 1), (2_000, "k1", 1)]
        # Last event at 2,999: the watermark (2,999) has passed the ends 1,000 and 2,000 only.
        self.assertEqual(rows.closed_by_watermark(expected, 2_999), expected[:2])
        self.assertEqual(rows.closed_by_watermark(expected, 3_000), expected)


if __name__ == "__main__":
    unittest.main()
