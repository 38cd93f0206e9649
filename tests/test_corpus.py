import wave

import pytest

from myxtts.data import corpus
from myxtts.data.corpus import CorpusSpec, build_corpus


def _tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_matches_ljspeech(small_corpus):
    lines = (small_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 16
    for line in lines:
        uid, text, normalized = line.split("|")
        assert text and normalized and not any(ch.isdigit() for ch in normalized)
        with wave.open(str(small_corpus / "wavs" / f"{uid}.wav")) as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (22050, 2, 1)
            assert 1.5 <= wav.getnframes() / 22050 <= 8.0
    speakers = (small_corpus / "speakers.csv").read_text().splitlines()
    assert speakers[0] == "id,speaker"
    assert {row.split(",")[1] for row in speakers[1:]} == {"speaker0", "speaker1"}


def test_same_seed_gives_identical_corpus_and_rebuild_is_a_no_op(tmp_path, small_corpus):
    again = tmp_path / "again"
    assert build_corpus(again, CorpusSpec(utterances=16, speakers=2, seed=0)) is True
    assert _tree(again) == _tree(small_corpus)
    before = {p: p.stat().st_mtime_ns for p in again.rglob("*")}
    assert build_corpus(again, CorpusSpec(utterances=16, speakers=2, seed=0)) is False
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*")} == before


def test_other_seed_gives_other_text_and_voices(tmp_path, small_corpus):
    build_corpus(tmp_path / "other", CorpusSpec(utterances=16, speakers=2, seed=1))
    assert (tmp_path / "other" / "metadata.csv").read_text() != (small_corpus / "metadata.csv").read_text()


def test_speakers_sound_different(small_corpus):
    voices = corpus.speaker_voices(CorpusSpec(utterances=16, speakers=4, seed=0))
    assert len({(v.name, v.pitch, v.rate) for v in voices}) == 4


def test_incomplete_corpus_is_rebuilt(tmp_path):
    out = tmp_path / "c"
    build_corpus(out, CorpusSpec(utterances=4, speakers=1, seed=0))
    next((out / "wavs").iterdir()).unlink()
    assert build_corpus(out, CorpusSpec(utterances=4, speakers=1, seed=0)) is True
    assert len(list((out / "wavs").iterdir())) == 4


@pytest.mark.parametrize("flags, message", [(["--speakers", "0"], "--speakers"),
                                            (["--utterances", "0"], "--utterances"),
                                            (["--seed", "-1"], "--seed")])
def test_cli_rejects_bad_flags(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        corpus.main(["--out", str(tmp_path / "x"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_builds_with_documented_flags(tmp_path, capsys):
    assert corpus.main(["--out", str(tmp_path / "c"), "--utterances", "3", "--speakers", "3", "--seed", "0"]) == 0
    assert "wrote 3 utterances" in capsys.readouterr().out
    assert corpus.main(["--out", str(tmp_path / "c"), "--utterances", "3", "--speakers", "3", "--seed", "0"]) == 0
    assert "nothing to do" in capsys.readouterr().out
