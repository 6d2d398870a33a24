"""zkpy/protocol/framing.py: length-prefixed frames, sans-IO."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkpy.protocol.framing import BufferLimitError, FrameLengthError, Frames, four_letter_word

LEN = struct.Struct(">i")


def framed(bodies) -> bytes:
    return b"".join(LEN.pack(len(b)) + b for b in bodies)


def chunked(data: bytes, cuts) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def bodies_of(frames: Frames, data) -> list[bytes]:
    return [bytes(frames.buf[s:e]) for s, e in frames.feed(data)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30), st.lists(st.integers(0, 10_000), max_size=40))
def test_any_bodies_in_any_chunking_come_back_exactly(bodies, cuts):
    data = framed(bodies)
    frames = Frames(max_frame=300, max_buffered=1 << 20)
    got = []
    for chunk in chunked(data, cuts):
        got += bodies_of(frames, chunk)
    assert got == bodies
    assert frames.buffered == 0 and frames.consumed == len(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=50), min_size=1, max_size=20))
def test_one_byte_at_a_time(bodies):
    data = framed(bodies)
    frames = Frames(max_frame=50)
    got = []
    for i in range(len(data)):
        got += bodies_of(frames, data[i : i + 1])
    assert got == bodies


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=2, max_size=20), st.data())
def test_a_consumer_that_stops_early_gets_the_rest_on_the_next_feed(bodies, data):
    frames = Frames(max_frame=40, max_buffered=1 << 20)
    stop = data.draw(st.integers(1, len(bodies) - 1))
    got = []
    for s, e in frames.feed(framed(bodies)):
        got.append(bytes(frames.buf[s:e]))
        if len(got) == stop:
            break  # e.g. the client does not read its answers: stop parsing
    assert got == bodies[:stop]
    assert frames.buffered == len(framed(bodies[stop:]))
    assert bodies_of(frames, b"") == bodies[stop:]


def test_partial_frames_are_kept_until_complete():
    frames = Frames(max_frame=100)
    data = framed([b"hello", b"world!"])
    assert bodies_of(frames, data[:2]) == []  # half a length
    assert frames.buffered == 2
    assert bodies_of(frames, data[2:7]) == []  # length and 1 byte of the body
    assert frames.buffered == 7
    assert bodies_of(frames, data[7:12]) == [b"hello"]  # and 3 bytes of the next length
    assert frames.buffered == 3 and frames.head() == data[9:12]
    assert bodies_of(frames, data[12:]) == [b"world!"]
    assert frames.buffered == 0


def test_empty_bodies_and_the_largest_allowed():
    frames = Frames(max_frame=10)
    assert bodies_of(frames, framed([b"", b"x" * 10, b""])) == [b"", b"x" * 10, b""]


@pytest.mark.parametrize("length", [-1, -(2**31), 11, 2**31 - 1])
def test_a_bad_length_is_raised_after_the_frames_before_it(length):
    frames = Frames(max_frame=10)
    data = framed([b"ok", b"fine"]) + LEN.pack(length) + b"junk"
    got = []
    with pytest.raises(FrameLengthError) as info:
        for s, e in frames.feed(data):
            got.append(bytes(frames.buf[s:e]))
    assert got == [b"ok", b"fine"]
    assert info.value.length == length and info.value.offset == 14
    with pytest.raises(FrameLengthError):  # sticky: the stream cannot be framed any further
        list(frames.feed(b"more"))


def test_a_bad_first_length_says_offset_zero():
    with pytest.raises(FrameLengthError) as info:
        list(Frames(max_frame=0xFFFFF).feed(b"ruok"))
    assert info.value.offset == 0 and info.value.length == int.from_bytes(b"ruok", "big")


def test_the_buffer_bound_is_enforced():
    frames = Frames(max_frame=100, max_buffered=50)
    data = framed([b"a" * 40])  # 44 bytes, within the bound
    assert bodies_of(frames, data[:30]) == []
    assert bodies_of(frames, data[30:]) == [b"a" * 40]
    partial = LEN.pack(100) + b"x" * 46  # 50 bytes of a frame of 100
    assert bodies_of(frames, partial) == []  # the consumed frame no longer counts
    with pytest.raises(BufferLimitError) as info:
        frames.feed(b"x")  # raised by feed itself, before any iteration
    assert info.value.buffered == 51 and info.value.limit == 50


def test_the_default_bound_holds_two_largest_frames():
    frames = Frames(max_frame=100)
    assert frames.max_buffered == 208
    with pytest.raises(BufferLimitError):
        frames.feed(b"\x00" * 209)


def test_feed_buffers_even_if_its_iterator_is_not_used():
    frames = Frames(max_frame=10)
    frames.feed(framed([b"abc"]))  # iterator dropped: nothing handed out
    assert bodies_of(frames, b"") == [b"abc"]


def test_four_letter_words():
    commands = ("ruok", "srvr", "mntr")
    assert four_letter_word(b"ruok", commands) == "ruok"
    assert four_letter_word(bytearray(b"mntr\n"), commands) == "mntr"
    assert four_letter_word(b"stat", commands) is None  # letters, but not a command given
    assert four_letter_word(b"ruo", commands) is None  # not 4 bytes yet
    assert four_letter_word(b"\x00\x00\x00,", commands) is None  # a frame length
    assert four_letter_word("ruok".encode("utf-16-be")[:4], commands) is None
    frames = Frames(max_frame=0xFFFFF)
    frames.feed(b"srvr")
    assert four_letter_word(frames.head(), commands) == "srvr" and frames.consumed == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=10))
def test_garbage_gives_frames_or_a_frame_error_and_nothing_else(data, cuts):
    frames = Frames(max_frame=20, max_buffered=64)
    try:
        for chunk in chunked(data, cuts):
            for s, e in frames.feed(chunk):
                assert 4 <= s <= e <= len(frames.buf) and e - s <= 20
    except (FrameLengthError, BufferLimitError):
        pass
