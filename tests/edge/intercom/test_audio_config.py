"""The door's audio config ([[intercom.audio]]): one entry per door, a door that exists, and
what this PyAV build cannot open is named at start (not at the first answered call). The
audio itself is tested end to end in test_rtc.py (door tone at the phone, phone's voice in
the door speaker's WAV)."""

from __future__ import annotations

import pytest

from edge.core.config import ConfigError
from edge.intercom.config import IntercomConfig
from edge.intercom.rtc import check_audio
from tests.edge.intercom.helpers import camera_frames, intercom_toml, seed


def test_one_entry_per_door_and_what_cannot_be_opened(tmp_path) -> None:
    with pytest.raises(ValueError, match="audio: door 'd-gate' is listed twice"):
        IntercomConfig.model_validate({"audio": [{"door": "d-gate"}, {"door": "d-gate"}]})
    mic = tmp_path / "greeting.wav"
    mic.write_bytes(b"RIFF")
    cfg = IntercomConfig.model_validate({"audio": [
        {"door": "d-gate", "mic": "hw:1,0", "mic_format": "alsa", "speaker": "default",
         "speaker_format": "alsa"},
        {"door": "d-east", "mic": str(mic), "speaker": "plughw:0", "speaker_format": "nosuch"},
        {"door": "d-west", "mic": str(tmp_path / "missing.wav")},
    ]})
    assert cfg.audio_of("d-east").speaker_format == "nosuch" and cfg.audio_of("d-x") is None
    problems = check_audio(cfg)
    assert problems == [
        "intercom.audio door d-east: speaker_format 'nosuch' is not in this PyAV/FFmpeg build",
        f"intercom.audio door d-west: mic file {tmp_path / 'missing.wav'} does not exist",
    ], problems  # ALSA is in the build: the first door is fine


async def test_audio_of_an_unknown_door_stops_the_box(make_config, run_box, board,
                                                      tmp_path) -> None:
    extra = '\n[[intercom.audio]]\ndoor = "d-nowhere"\nmic = "hw:1"\nmic_format = "alsa"\n'
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "cam"),
                                             rtc=extra))
    seed(config)
    with pytest.raises(ConfigError, match=r"intercom\.audio: door 'd-nowhere' is not a"):
        await run_box(config)
