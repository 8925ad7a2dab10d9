"""What the speech-to-text engine keeps of Whisper's output: what was said, not its notes on the
sound (spacechat_plugin/voice/engines.py). Whisper writes "[BLANK_AUDIO]" for the silence at the
end of a memo now and then: a transcript that said so failed the WER check of a spoken clip."""

from __future__ import annotations

import pytest

from spacechat_plugin.voice.engines import said


@pytest.mark.parametrize(
    ("whisper", "kept"),
    [
        (
            "Please schedule the design review for Tuesday afternoon. [BLANK_AUDIO]",
            "Please schedule the design review for Tuesday afternoon.",
        ),
        ("[BLANK_AUDIO]", ""),
        (" [MUSIC] ♪ la la ♪", "la la"),
        ("(wind blowing) Send the notes before Friday.", "Send the notes before Friday."),
        ("Costs 2 + 3, not 4.", "Costs 2 + 3, not 4."),
    ],
)
def test_a_transcript_keeps_what_was_said_not_notes_on_the_sound(whisper: str, kept: str) -> None:
    assert said(whisper) == kept
