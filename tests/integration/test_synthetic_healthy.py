"""The synthetic set's healthy test subjects: lesion-free, seeded, after the lesion subjects, which they leave
unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from datasets.synthetic import (
    SyntheticConfig,
    generate_subject,
    healthy_subject_ids,
    subject_families,
    subject_labels,
)

LESION_ONLY = SyntheticConfig(n_subjects=2, seed=3)
WITH_HEALTHY = replace(LESION_ONLY, n_healthy_subjects=1)


def test_healthy_subjects_make_another_set() -> None:
    assert WITH_HEALTHY.config_hash() != LESION_ONLY.config_hash()


def test_healthy_subjects_follow_the_lesion_subjects_and_leave_them_unchanged() -> None:
    assert WITH_HEALTHY.n_total == 3
    assert subject_families(WITH_HEALTHY) == [*subject_families(LESION_ONLY), "healthy"]
    assert healthy_subject_ids(WITH_HEALTHY) == ["BraTS2021_00002"] and healthy_subject_ids(LESION_ONLY) == []
    for index in range(LESION_ONLY.n_subjects):
        np.testing.assert_array_equal(subject_labels(WITH_HEALTHY, index), subject_labels(LESION_ONLY, index))


def test_a_healthy_subject_has_a_brain_and_no_lesion() -> None:
    subject = generate_subject(WITH_HEALTHY, 2)
    assert subject.family == "healthy" and not subject.label.any() and not subject.plan.lesions
    z0, z1 = WITH_HEALTHY.slice_range
    flair = subject.images["flair"]
    assert (flair[:, :, z0:z1] > 0).any(axis=(0, 1)).all()  # brain on every slice of the range
    again = generate_subject(WITH_HEALTHY, 2)
    np.testing.assert_array_equal(again.images["t1"], subject.images["t1"])  # seeded
