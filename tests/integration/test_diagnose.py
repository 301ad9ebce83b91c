"""Method diagnoses: IterMask²'s (methods/itermask2/diagnosis.py, the ``diagnose`` hook) with mask overlaps by
hand, the f1 map equal to the -spat method's map on the same weights, the first-step share; and the generic
command (benchmark/diagnose.py) end to end on tiny data."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.diagnose import has_diagnosis, run_diagnosis, standard_map_scores
from benchmark.predict import predict_split
from methods import MethodContext, create_method
from methods.itermask2.diagnosis import diagnose, mask_trajectory, score_map
from tests.tiny_config import compose_tiny
from tests.toy_data import toy_slices


def test_mask_trajectory_against_hand_counts() -> None:
    region = torch.zeros(1, 4, 4, dtype=torch.bool)
    region[0, :, :3] = True  # 12 brain pixels
    labels = torch.zeros(1, 4, 4)
    labels[0, 0, :2] = 1.0  # 2 lesion pixels in the brain
    labels[0, 3, 3] = 1.0  # outside the brain: not counted
    first = region.clone()  # every brain pixel masked
    second = torch.zeros_like(region)
    second[0, 0, 0] = second[0, 1, 1] = second[0, 3, 3] = True  # 1 lesion hit, 1 healthy, 1 outside the brain
    rows = mask_trajectory([first, second], labels, region)
    assert (rows[0].lesion_recall, rows[0].precision, rows[0].brain_share) == (1.0, 2 / 12, 1.0)
    assert (rows[1].lesion_recall, rows[1].precision, rows[1].brain_share) == (0.5, 0.5, 2 / 12)


def test_diagnosis_f1_map_is_the_spat_map_and_first_step_masks_sixty_percent() -> None:
    val = toy_slices(6, 32, seed=3)
    test = toy_slices(5, 32, lesions=True, seed=4)
    context = MethodContext("flair", 32, torch.device("cpu"), seed=0, available_modalities=test.modalities)
    full = create_method("itermask2", context, net="small")
    full.calibrate(val)  # untrained networks: the checks below hold for any weights
    result = diagnose(full.refinement_model(), val, test, batch_size=4, score_maps=standard_map_scores)

    spat = create_method("itermask2", context, layout="-spat", net="small")
    spat.f1.load_state_dict(full.f1.state_dict())
    spat_maps = predict_split(spat, test, batch_size=5).anomaly_maps
    expected = score_map("spat", spat_maps, test, standard_map_scores)
    assert abs(result.maps[0].dice - expected.dice) < 1e-9 and abs(result.maps[0].auroc - expected.auroc) < 1e-9

    n_brain = (test.brain > 0).flatten(1).sum(1).double()
    share = float(torch.floor(0.6 * n_brain + 0.5).sum() / n_brain.sum())
    assert abs(result.trajectory[0].brain_share - share) < 1e-9
    sizes = [row.brain_share for row in result.trajectory]
    assert all(a >= b for a, b in zip(sizes, sizes[1:])), "masks never grow"
    whole = [e for e in result.healthy_errors if "100%" in e.mask]
    assert len(whole) == 1 and abs(whole[0].brain_share - 1.0) < 1e-9
    assert 0.0 <= result.healthy_final_mask_share <= 0.6 + 1e-9

    # the hook: the same numbers as a JSON-able record with its markdown; none for -spat
    record = full.diagnose(val, test, 4, standard_map_scores)
    assert record is not None and record["maps"][0]["dice"] == result.maps[0].dice
    assert record["trajectory"][0]["brain_share"] == result.trajectory[0].brain_share
    assert "| iteration | lesion recall |" in record["markdown"] and json.dumps(record)
    assert spat.diagnose(val, test, 4, standard_map_scores) is None
    unscored = full.diagnose(val, test, 4)
    assert unscored is not None and unscored["maps"] == [] and "not scored" in unscored["markdown"]
    with pytest.raises(ValueError, match="not -spat"):
        diagnose(spat.refinement_model(), val, test)


def test_only_methods_with_the_hook_are_diagnosed() -> None:
    assert has_diagnosis("itermask2") and not has_diagnosis("ae") and not has_diagnosis("ddpm")


def test_diagnosis_command_writes_its_report(tmp_path, shared_data_dir) -> None:
    cfg = compose_tiny(
        tmp_path, shared_data_dir, "experiment.only_methods=[itermask2]", "experiment.modalities=[t1]",
        "methods.itermask2.train.steps=3", "methods.itermask2.train.val_every=3",
    )  # fmt: skip
    text = run_diagnosis(cfg)
    report = tmp_path / "default" / "report"
    assert (report / "diagnosis.md").read_text() == text
    records = json.loads((report / "diagnosis.json").read_text())
    (record,) = records.values()
    assert record["train_steps"] == 3 and len(record["maps"]) == 2 and record["trajectory"]
    assert record["method_label"] == "IterMask²" and record["markdown"] in text

    # compute.precision picks the cell and its checkpoint, as in the comparison: bf16 trains its own
    bf16 = compose_tiny(
        tmp_path, shared_data_dir, "experiment.only_methods=[itermask2]", "experiment.modalities=[t1]",
        "methods.itermask2.train.steps=3", "methods.itermask2.train.val_every=3", "compute.precision=bf16",
    )  # fmt: skip
    run_diagnosis(bf16)
    (bf16_key,) = json.loads((report / "diagnosis.json").read_text())
    (fp32_key,) = records
    assert bf16_key != fp32_key
    assert len(list((tmp_path / "checkpoints").rglob("*.pt"))) == 2
