"""A one-line progress bar with speed and ETA (a plain line every 30 s when not a terminal)."""
import sys
import time


class Progress:
    def __init__(self, total, description="", stream=sys.stderr):
        self.total, self.description, self.stream = total, description, stream
        self.done = 0
        self.start = self.last_print = time.time()
        self.interactive = stream.isatty()

    def update(self, count=1, **values):
        self.done += count
        now = time.time()
        if self.interactive or now - self.last_print >= 30 or self.done == self.total:
            self.last_print = now
            self.stream.write(("\r" if self.interactive else "") + self.line(now, values) + ("" if self.interactive else "\n"))
            self.stream.flush()

    def line(self, now, values):
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        filled = int(20 * self.done / max(self.total, 1))
        shown = " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        return (f"{self.description} {self.done}/{self.total} [{'=' * filled}{' ' * (20 - filled)}] "
                f"{rate:.2f} it/s ETA {_clock(eta)} {shown}")

    def close(self):
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
