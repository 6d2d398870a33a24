"""Length-prefixed frames, sans-IO: bytes in, frame spans out, no sockets (the h11 idea).

ZooKeeper's client protocol frames every request and response as a 4-byte big-endian
signed length and then the body; zkpy's peer links use the same framing for msgpack
messages.  `Frames` is the one parser for both:

    frames = Frames(max_frame=0xFFFFF, max_buffered=4 << 20)
    try:
        for start, end in frames.feed(data):        # every complete frame, in order
            handle(frames.buf, start, end)          # the body is frames.buf[start:end]
    except FrameError as e:                         # a bad length, or too much buffered
        log.warning(...); transport.close()

`feed` appends `data` to `buf` and returns an iterator of (start, end) offsets into `buf`:
no body is copied, so the client's decoders read straight from the buffer (as the inline
loop did).  The offsets stay valid until the next `feed`, which first drops the bytes of
every frame handed out.  A frame counts as handed out once the iterator has yielded it, so
a consumer that stops early (breaks out of the loop: the connection was closed, or the
client does not read its answers) leaves the frames after it buffered, and the next
`feed(b"")` yields them again.

Errors come in stream order: frames before a bad length are yielded first, then the
iterator raises `FrameLengthError` (negative, or over `max_frame`); `BufferLimitError` is
raised by `feed` itself when more than `max_buffered` bytes would be held.  Both are
sticky (the bad bytes stay at the front), so the caller closes the connection.

Why an iterator of offsets: 10,000 frames of 30 bytes handed to a consumer that calls a
method per frame, measured against the inline loop it replaces (tests/test_framing.py has
no timings; the figures are in the commit that added this file): a list of (start, end)
tuples and a generator cost the same within noise, copying every body to `bytes` costs
~100-200 ns more per frame, and memoryviews would pin the bytearray (a bytearray with a
live export cannot be resized, so `del buf[:n]` would raise).
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator

_unpack_len = struct.Struct(">i").unpack_from


class FrameError(ValueError):
    """The byte stream cannot be framed any further: close the connection."""


class FrameLengthError(FrameError):
    def __init__(self, length: int, max_frame: int, offset: int) -> None:
        super().__init__(f"frame length {length} out of bounds (0..{max_frame}) at stream offset {offset}")
        self.length = length
        self.max_frame = max_frame
        self.offset = offset  # where the length field starts in the whole stream (0: the first frame)


class BufferLimitError(FrameError):
    def __init__(self, buffered: int, limit: int) -> None:
        super().__init__(f"{buffered} bytes buffered, more than the limit of {limit}")
        self.buffered = buffered
        self.limit = limit


class Frames:
    """A parser of 4-byte-length-prefixed frames over one byte stream.

    `max_frame`: the largest body accepted.  `max_buffered`: the most bytes held at once
    (complete frames not yet handed out plus a partial one), checked as data arrives;
    by default room for two frames of the largest size.
    """

    __slots__ = ("buf", "max_frame", "max_buffered", "_pos", "_dropped")

    def __init__(self, max_frame: int, max_buffered: int | None = None) -> None:
        if max_frame < 0:
            raise ValueError("max_frame must be >= 0")
        self.buf = bytearray()  # the same object for the life of the parser: callers may keep it
        self.max_frame = max_frame
        self.max_buffered = 2 * (max_frame + 4) if max_buffered is None else max_buffered
        self._pos = 0  # bytes at the front of buf already handed out
        self._dropped = 0  # bytes removed from the front of buf so far

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[tuple[int, int]]:
        """Add `data`; return an iterator of (start, end) of each complete frame's body in `buf`."""
        buf = self.buf
        if self._pos:
            del buf[: self._pos]  # cheap: CPython moves a bytearray's start instead of copying
            self._dropped += self._pos
            self._pos = 0
        if data:
            buf += data
            if len(buf) > self.max_buffered:
                raise BufferLimitError(len(buf), self.max_buffered)
        return self._spans(buf)

    def _spans(self, buf: bytearray) -> Iterator[tuple[int, int]]:
        pos = self._pos
        end = len(buf)
        max_frame = self.max_frame
        while end - pos >= 4:
            (n,) = _unpack_len(buf, pos)
            if n < 0 or n > max_frame:
                raise FrameLengthError(n, max_frame, self._dropped + pos)
            start = pos + 4
            pos = start + n
            if pos > end:
                return
            self._pos = pos
            yield start, pos

    @property
    def buffered(self) -> int:
        """Bytes held that have not been handed out as frames (a partial frame, or frames left)."""
        return len(self.buf) - self._pos

    @property
    def consumed(self) -> int:
        """Bytes of the stream handed out as frames so far (0: nothing parsed yet)."""
        return self._dropped + self._pos

    def head(self, n: int = 4) -> bytes:
        """The next `n` bytes not yet handed out (fewer if fewer are buffered)."""
        return bytes(self.buf[self._pos : self._pos + n])


def four_letter_word(head: bytes | bytearray, commands: Collection[str]) -> str | None:
    """The command if the 4 bytes of `head` are one of ZooKeeper's four-letter words, else None.

    ZooKeeper reads the first 4 bytes of a connection as a frame length and, while the
    connection has no session yet, first looks them up as a command (NIOServerCnxn
    `readLength` → `checkFourLetterWord`); a match answers with text and closes instead of
    reading a frame.  Pure: the caller passes what is buffered (e.g. `Frames.head()`) and
    the command names (zkpy/server/fourletter.py `COMMANDS`).  Read as a length, a word of
    ASCII letters is at least 0x41414141 (1.09e9), far above jute.maxbuffer, so the check
    can also be left to the `FrameLengthError` of a stream's first frame (offset 0).
    """
    if len(head) < 4:
        return None
    word = bytes(head[:4])
    if not word.isalpha():  # bytes.isalpha: ASCII letters only
        return None
    text = word.decode("ascii")
    return text if text in commands else None
