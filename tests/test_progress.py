"""Progress bars: live on a terminal, whole throttled lines in a log file, nothing when disabled."""

from __future__ import annotations

import io
import time

from pymk.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_whole_lines_at_the_start_and_the_end():
    log = io.StringIO()
    for _ in progress_bar(range(5), desc="cut 0", stream=log):
        time.sleep(0.12)   # a plain tqdm bar (mininterval 0.1 s) would redraw after each step
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("cut 0:") and "0/5" in lines[0]
    assert "5/5" in lines[1] and text.endswith("\n")


def test_a_manual_bar_in_a_log_file_ends_on_its_total():
    log = io.StringIO()
    with progress_bar(total=1000, unit="B", unit_scale=True, desc="edges.txt", stream=log) as bar:
        bar.update(400)
        bar.update(600)
    assert log.getvalue().splitlines()[-1].startswith("edges.txt: 100% 1.00k/1.00k")


def test_a_terminal_gets_the_redrawn_bar_and_a_disabled_bar_writes_nothing():
    term = _Terminal()
    for _ in progress_bar(range(3), desc="users", stream=term):
        pass
    assert "\r" in term.getvalue() and "3/3" in term.getvalue()
    quiet = io.StringIO()
    assert list(progress_bar(range(3), enabled=False, stream=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""
