"""Voice memos and spoken replies: speech to text and text to speech behind one small interface
each (engines.py), run in worker processes (pool.py), with the memo's life in service.py, live
transcription in live.py and spoken replies in speech.py. docs/voice.md says what users get."""
