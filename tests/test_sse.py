"""SSE parsing: every byte passes through unchanged, whatever the chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zai_proxy.sse import Event, SSEParser, parse_fields


def feed_all(chunks, parser=None):
    parser = parser or SSEParser()
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events, parser.flush()


def split_at(data: bytes, cuts) -> list[bytes]:
    points = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


def test_fields_and_raw_of_a_simple_stream():
    stream = (b'data: {"a":1}\n\n'
              b"event: message_start\ndata: one\ndata: two\n\n"
              b": keep-alive comment\n\n"
              b"data:no-space\nid: 7\nretry: 10\nflag\n\n"
              b"data: tail without end")
    events, tail = feed_all([stream])
    assert [(e.event, e.data) for e in events] == [
        (None, '{"a":1}'), ("message_start", "one\ntwo"), (None, ""), (None, "no-space")]
    assert events[2].raw == b": keep-alive comment\n\n"
    assert tail == b"data: tail without end"
    assert b"".join(e.raw for e in events) + tail == stream


def test_crlf_and_cr_line_endings():
    stream = b"event: a\r\ndata: x\r\n\r\nevent: b\rdata: y\r\rdata: z\n\r\n"
    events, tail = feed_all([stream])
    assert [(e.event, e.data) for e in events] == [("a", "x"), ("b", "y"), (None, "z")]
    assert [e.raw for e in events] == [b"event: a\r\ndata: x\r\n\r\n", b"event: b\rdata: y\r\r",
                                       b"data: z\n\r\n"]
    assert tail == b""


def test_cr_at_the_end_of_a_chunk_waits_for_the_next_byte():
    parser = SSEParser()
    # "\r\n\r" could still become "\r\n\r\n": no event may be cut before the last LF arrives.
    assert parser.feed(b"data: x\r\n\r") == []
    events = parser.feed(b"\ndata: y\r\n\r\n")
    assert [e.raw for e in events] == [b"data: x\r\n\r\n", b"data: y\r\n\r\n"]
    assert parser.flush() == b""


def test_a_lone_cr_terminator_is_released_once_the_next_byte_is_not_lf():
    parser = SSEParser()
    assert parser.feed(b"data: x\r\r") == []
    events = parser.feed(b"data: y")
    assert [e.raw for e in events] == [b"data: x\r\r"]
    assert parser.flush() == b"data: y"


def test_multibyte_character_split_across_chunks():
    stream = 'data: {"content":"héllo → 世界"}\n\n'.encode()
    cut = stream.index("世".encode()) + 1  # inside the 3-byte character
    events, tail = feed_all([stream[:cut], stream[cut:]])
    assert events[0].data == '{"content":"héllo → 世界"}'
    assert events[0].raw == stream and tail == b""


def test_invalid_utf8_is_replaced_in_data_but_kept_in_raw():
    stream = b"data: \xff\xfe ok\n\n"
    events, _ = feed_all([stream])
    assert events[0].data == "\ufffd\ufffd ok"
    assert events[0].raw == stream


def test_an_event_that_never_ends_is_released_past_the_size_cap():
    parser = SSEParser(max_event_bytes=16)
    assert parser.feed(b"data: 0123456789") == []
    events = parser.feed(b"abcdef")
    assert events == [Event(raw=b"data: 0123456789abcdef", event=None, data="")]
    assert parser.feed(b"\n\ndata: z\n\n")[1].data == "z"


def test_empty_chunks_and_flush_of_nothing():
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.flush() == b""


# Property tests ---------------------------------------------------------------------------
EOLS = (b"\n", b"\r\n", b"\r")
_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                max_size=12)
_line = st.one_of(
    st.tuples(st.just("data"), _text),
    st.tuples(st.just("event"), _text),
    st.tuples(st.just(":"), _text),
)


@st.composite
def sse_streams(draw):
    """A stream of well-formed events plus the (event, data) each one must parse to."""
    raws, expected = [], []
    for _ in range(draw(st.integers(0, 6))):
        lines = draw(st.lists(_line, min_size=1, max_size=4))
        raw, name, data, eol = b"", None, [], b""
        for field, value in lines:
            eol = draw(st.sampled_from(EOLS))
            raw += (f":{value}" if field == ":" else f"{field}: {value}").encode() + eol
            if field == "data":
                data.append(value)
            elif field == "event":
                name = value
        # A lone CR followed by LF would be one CRLF line end, not a blank line.
        blank = draw(st.sampled_from([b"\r\n", b"\r"] if eol == b"\r" else EOLS))
        raws.append(raw + blank)
        expected.append((name, "\n".join(data)))
    tail = draw(st.sampled_from([b"", b"data: partial", b"data: x\n", b": c\r"]))
    return raws, expected, tail


@settings(max_examples=300, deadline=None)
@given(sse_streams(), st.lists(st.integers(0, 400), max_size=40))
def test_every_chunking_gives_the_same_events_and_the_same_bytes(stream, cuts):
    raws, expected, tail = stream
    data = b"".join(raws) + tail
    events, rest = feed_all(split_at(data, cuts))
    if not tail and raws and raws[-1].endswith(b"\r"):
        # A final CR could have been half of a CRLF: with no byte after it, the event stays in
        # the tail, which flush() hands back for passing on unchanged.
        raws, expected, tail = raws[:-1], expected[:-1], raws[-1]
    assert [e.raw for e in events] == raws
    assert [(e.event, e.data) for e in events] == expected
    assert rest == tail
    assert b"".join(e.raw for e in events) + rest == data
    # byte by byte, the hardest split of all
    single, rest_single = feed_all([data[i:i + 1] for i in range(len(data))])
    assert single == events and rest_single == rest


_noisy = st.binary(max_size=200) | st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"data: ", b":", b"event: x", b"\xe4\xb8", b"\x96",
                     b"ab"]), max_size=60).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_noisy, st.lists(st.integers(0, 250), max_size=30))
def test_arbitrary_bytes_always_round_trip(data, cuts):
    events, rest = feed_all(split_at(data, cuts))
    assert b"".join(e.raw for e in events) + rest == data
    whole, whole_rest = feed_all([data])
    assert events == whole and rest == whole_rest
    for event in events:
        assert event == parse_fields(event.raw)


# The relay's regrouping into whole events (streaming.WholeEvents) -----------------------------------
def _regroup(chunks, events=None):
    from zai_proxy.streaming import WholeEvents
    events = events or WholeEvents()
    return b"".join(events.feed(chunk) for chunk in chunks), events


@settings(max_examples=300, deadline=None)
@given(stream=st.lists(st.sampled_from([b"data: x\n\n", b"data: y\r\n\r\n", b"a\r\r", b"\n",
                                        b"\r", b"data: partial", b"\n\n\n"]), max_size=12)
       .map(b"".join), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_regrouping_releases_whole_events_and_holds_back_only_a_partial_one(stream, cuts):
    from zai_proxy.streaming import complete_prefix_length
    released, events = _regroup(split_at(stream, cuts))
    tail = events.tail()
    # Whatever the chunking: every byte in order, released up to an event boundary, and what
    # is held back holds no boundary of its own.
    assert released + tail == stream
    assert complete_prefix_length(released) == len(released)
    assert complete_prefix_length(tail) == 0


def test_one_long_event_is_searched_once_not_once_per_read():
    """An event of 4 MiB arriving 1 KiB at a time: each read is searched for a boundary from
    where the last search stopped (3 bytes of overlap), so the bytes searched stay linear in the
    bytes relayed; searching the whole held event on every read would search ~2 GiB."""
    from zai_proxy.streaming import WholeEvents
    event = b"data: " + b"x" * (4 << 20) + b"\n\n"
    reads = split_at(event, range(1024, len(event), 1024))
    released, events = _regroup(reads, WholeEvents(max_event_bytes=8 << 20))
    assert released == event
    assert events.scanned <= len(event) + 3 * len(reads)


def test_an_event_longer_than_the_cap_is_released_in_pieces_and_the_relay_knows_it():
    from zai_proxy.streaming import WholeEvents
    events = WholeEvents(max_event_bytes=1000)
    assert events.feed(b"data: " + b"x" * 600) == b""
    piece = events.feed(b"x" * 600)
    assert len(piece) == 1206 and events.mid_event          # released before its end
    assert events.feed(b"xx\n\ndata: next") == b"xx\n\n" and not events.mid_event
    assert events.tail() == b"data: next"


def test_the_parser_releases_an_overlong_event_and_says_so():
    parser = SSEParser(max_event_bytes=1000)
    assert parser.feed(b"data: " + b"x" * 1200) and parser.mid_event
    assert parser.feed(b"\r\n\r\n")[0].raw == b"\r\n\r\n" and not parser.mid_event
