"""The one exception the SAL record codec raises for malformed bytes or out-of-range records."""

from __future__ import annotations


class RecordFormatError(ValueError):
    """A SAL error record that cannot be decoded or encoded.

    The message names what is wrong and, when decoding, the byte offset in the record
    where the problem starts.
    """
