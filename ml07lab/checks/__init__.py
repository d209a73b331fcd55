"""Checkers for the notebooks' "your turn" exercises.

Why checkers: a learner who is stuck needs to know *what* is wrong, not only that
something is. Each checker calls the learner's function on small cases whose answers
come from the kit's own (tested) code, prints one `PASS Exercise ...` line when every case
passes (plain text: an emoji is a missing-glyph box in some browsers), and otherwise
raises `ExerciseError` naming the case, the expected and the returned value, and a hint.
An unfinished stub's `NotImplementedError` passes through unchanged: its
message already says what to write.

Checkers never train a model, so they run in milliseconds, in CI and in class.
How exercises are marked in the notebooks: docs/instructor.md, "Writing an exercise".
"""
from __future__ import annotations

from ._common import ExerciseError
from .attack_checks import (check_asr, check_cheapest_rate, check_enrol, check_tar_far, check_threshold_at_far,
                            check_trigger)
from .control_checks import (check_anomaly_index, check_controls_meeting, check_drift, check_largest_epsilon,
                             check_mia_advantage, check_modified_files, check_signature, check_unsafe_imports)

__all__ = ["ExerciseError", "check_tar_far", "check_enrol", "check_trigger", "check_cheapest_rate",
           "check_threshold_at_far", "check_asr", "check_drift", "check_modified_files", "check_signature",
           "check_unsafe_imports", "check_mia_advantage", "check_largest_epsilon", "check_anomaly_index",
           "check_controls_meeting"]
