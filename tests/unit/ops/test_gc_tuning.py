import gc

from worker.ops.gc_tuning import THRESHOLDS, tune_for_throughput


def test_tuning_raises_the_thresholds_and_freezes_start_up_objects() -> None:
    before = gc.get_threshold()
    try:
        tune_for_throughput()
        assert gc.get_threshold() == THRESHOLDS
        assert THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
