"""InputProblems: bad input is logged once per cause and counted."""

from dense_descriptors_ros.io.image_conversion import ImageError
from dense_descriptors_ros.nodes.input_problems import InputProblems


class _Logger:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(text)


def test_input_problems_log_once_per_cause_and_count():
    logger = _Logger()
    problems = InputProblems(logger, every=100)
    for _ in range(5):
        problems.report("bad encoding", "yuv422")
    problems.report("empty image", "0x0")
    assert problems.counts == {"bad encoding": 5, "empty image": 1}
    assert problems.total == 6
    assert len(logger.lines) == 2 and "bad encoding, 1 so far" in logger.lines[0]


def test_errors_are_counted_by_their_cause_not_by_their_text():
    problems = InputProblems(_Logger())
    problems.report_error(ImageError("truncated data", "100 bytes for 48 rows"))
    problems.report_error(ImageError("truncated data", "90 bytes for 48 rows"))
    problems.report_error(RuntimeError("CUDA out of memory"))
    assert problems.counts == {"truncated data": 2, "RuntimeError": 1}
