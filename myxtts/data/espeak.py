"""Speech from libespeak-ng (shipped in the espeakng-loader wheel) through ctypes.

Synchronous mode: espeak_Synth returns only after the synth callback has received every sample,
so one utterance is one call and the result is deterministic for a given voice and text.
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak voice with a variant, a pitch (0-99) and a rate (words/min)."""

    name: str
    pitch: int
    rate: int
    pitch_range: int = 50


class EspeakSynthesizer:
    """Process-wide handle on libespeak-ng; espeak keeps global state, so calls are serialized."""

    _lock = threading.Lock()
    _library: ctypes.CDLL | None = None
    _sample_rate = 0

    def __init__(self) -> None:
        with self._lock:
            if EspeakSynthesizer._library is None:
                EspeakSynthesizer._library, EspeakSynthesizer._sample_rate = self._load()
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _SYNTH_CALLBACK(self._receive)

    @staticmethod
    def _load() -> tuple[ctypes.CDLL, int]:
        try:
            import espeakng_loader
        except ImportError as error:  # pragma: no cover - the wheel is a declared dependency
            raise RuntimeError("espeakng-loader is not installed: pip install espeakng-loader") from error
        library = ctypes.CDLL(espeakng_loader.get_library_path())
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        library.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        library.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data_path = espeakng_loader.get_data_path().encode()
        sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if sample_rate <= 0:
            raise RuntimeError(f"libespeak-ng failed to initialize with data at {data_path.decode()}")
        return library, sample_rate

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def _receive(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str, voice: Voice, seed: int = 0) -> np.ndarray:
        """Return int16 mono samples at `sample_rate` for `text` spoken by `voice`."""
        library = self._library
        assert library is not None, "the constructor loads the library"
        encoded = text.encode("utf-8") + b"\0"
        with self._lock:
            self._chunks = []
            library.espeak_SetSynthCallback(self._callback)
            if library.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"espeak voice {voice.name!r} is not available")
            for parameter, value in ((_ESPEAK_RATE, voice.rate), (_ESPEAK_PITCH, voice.pitch),
                                     (_ESPEAK_RANGE, voice.pitch_range)):
                library.espeak_SetParameter(parameter, value, 0)
            # Breathy variants draw noise from espeak's generator; a fixed seed keeps the audio reproducible.
            library.espeak_ng_SetRandSeed(seed)
            status = library.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0,
                                          _ESPEAK_CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
