"""InputProblems: bad input is logged once per cause and counted."""

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
