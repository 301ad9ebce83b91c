"""Evaluation, runner, results store and CLI of the brain-lesion anomaly-segmentation benchmark."""

from methods._guard import check_datasets_package

check_datasets_package()
