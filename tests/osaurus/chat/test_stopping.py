"""Stop strings never leak, however the text is cut into pieces; end-of-turn tokens."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from osaurus.chat.stopping import StopStringFilter, end_of_turn_ids


def _run(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    f = StopStringFilter(stops)
    out = ""
    for chunk in chunks:
        out += f.feed(chunk)
        if f.stopped:
            return out, True
    return out + f.flush(), False


def test_stop_string_spanning_chunks_is_withheld() -> None:
    assert _run(["The cap", "ital of Fr", "ance"], [" of Fr"]) == ("The capital", True)


def test_false_start_is_released() -> None:
    f = StopStringFilter(["STOP"])
    assert f.feed("a ST") == "a "  # "ST" might start STOP: held
    assert f.feed("ART") == "START"
    assert not f.stopped


def test_held_text_is_flushed_at_the_end() -> None:
    assert _run(["abc S", "TO"], ["STOP"]) == ("abc STO", False)


def test_no_stops_passes_everything() -> None:
    assert _run(["a", "b"], []) == ("ab", False)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="abXY \n", max_size=40),
    stops=st.lists(st.text(alphabet="abXY \n", min_size=1, max_size=4), min_size=1, max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_output_is_text_before_first_stop_whatever_the_chunking(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    bounds = sorted({0, len(text), *[min(c, len(text)) for c in cuts]})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    hits = [(i, s) for s in stops if (i := text.find(s)) >= 0]
    out, stopped = _run(chunks, stops)
    if hits:
        first = min(i + len(s) for i, s in hits)  # where the earliest-completing match ends
        ends = [(i, s) for i, s in hits if i + len(s) == first]
        assert stopped
        assert out == text[: min(i for i, _ in ends)]
    else:
        assert (out, stopped) == (text, False)


def test_end_of_turn_ids_include_template_markers(models_dir: Path, model_id: str) -> None:
    from mlx_lm.tokenizer_utils import load as load_tokenizer

    tokenizer = load_tokenizer(models_dir / model_id)
    ids = end_of_turn_ids(tokenizer)
    assert {0, 2} <= ids  # <|endoftext|> and <|im_end|>
    assert 1 not in ids  # <|im_start|> is not an end


def test_the_filter_says_which_stop_string_matched() -> None:
    f = StopStringFilter(["END", "Paris", "zzz"])
    out = "".join(f.feed(piece) for piece in ["The capital is Pa", "ris, and", " END"])
    assert out == "The capital is " and f.stopped and f.matched == "Paris"
    quiet = StopStringFilter(["zzz"])
    quiet.feed("nothing here")
    assert quiet.matched is None and not quiet.stopped
