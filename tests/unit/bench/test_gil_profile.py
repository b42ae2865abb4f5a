"""The GIL profile's stages: a sample is charged to the innermost Sluice frame's stage."""

from __future__ import annotations

from bench.gil_profile import CONSUMER_THREAD, EVENT_LOOP, breakdown, stage_of

FRAMES = [
    {"name": "submit_batch", "file": "/repo/worker/pipeline/wiring.py"},
    {"name": "normalize", "file": "/repo/worker/events/normalize.py"},
    {"name": "loads", "file": "/repo/worker/events/json_codec.py"},
    {"name": "dumps", "file": "/repo/worker/events/json_codec.py"},
    {"name": "_run_once", "file": "/usr/lib/python3.11/asyncio/base_events.py"},
    {"name": "paced_fetch", "file": "/repo/worker/kafka/fetch_pacing.py"},
]


def test_the_innermost_sluice_frame_names_the_stage() -> None:
    assert stage_of(FRAMES, [4, 0, 1], main_thread=True) == "normalise"
    assert stage_of(FRAMES, [4, 0, 1, 2], main_thread=True) == "decode"
    assert stage_of(FRAMES, [4, 0, 3], main_thread=True) == "encode"
    assert stage_of(FRAMES, [4, 0], main_thread=True) == "routing and settlement"
    assert stage_of(FRAMES, [4], main_thread=True) == EVENT_LOOP


def test_every_sample_of_another_thread_is_the_consumer_threads() -> None:
    assert stage_of(FRAMES, [4, 5], main_thread=False) == CONSUMER_THREAD


def test_the_breakdown_adds_each_samples_weight_to_its_stage() -> None:
    speedscope = {"shared": {"frames": FRAMES}, "profiles": [
        {"name": 'Thread 1 "MainThread"', "samples": [[4, 0, 1], [4, 0, 1], [4]],
         "weights": [0.004, 0.004, 0.004]},
        {"name": 'Thread 2 "Thread-1"', "samples": [[4, 5]], "weights": [0.004]}]}
    seconds = breakdown(speedscope)
    assert seconds == {"normalise": 0.008, EVENT_LOOP: 0.004, CONSUMER_THREAD: 0.004}
