"""argparse types that check a flag's value where it is parsed, so that a bad value is one
usage line before any work: ``type=within("(0, inf)")``."""
import argparse
import re


def within(interval, kind=float):
    """An argparse type: a ``kind`` number in ``interval``, written "[low, high)" ("[" "]"
    closed ends, "(" ")" open ones, "inf" allowed; NaN is in none)."""
    low_end, low, high, high_end = re.fullmatch(r"([\[(])(\S+), (\S+)([\])])", interval).groups()

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        above = value >= float(low) if low_end == "[" else value > float(low)
        below = value <= float(high) if high_end == "]" else value < float(high)
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {value}")
        return value
    parse.__name__ = kind.__name__   # argparse names the type in its own messages
    return parse
