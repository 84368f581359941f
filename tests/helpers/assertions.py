"""Assertions shared by the command tests."""


def assert_one_line_error(prog: str, code: int, stderr: str, *patterns: str) -> None:
    """The command ``prog`` failed with exit status 1 and exactly one line
    ``<prog>: error: ...`` on stderr (no traceback) that contains every pattern."""
    assert code == 1 and stderr.count('\n') == 1, stderr
    assert stderr.startswith(f'{prog}: error: ') and 'Traceback' not in stderr, stderr
    for pattern in patterns:
        assert pattern in stderr, stderr
