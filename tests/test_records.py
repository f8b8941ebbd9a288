"""The result records' ``to_frame()``: each shows what its fields say, one row per thing it counts.

(That every public result is a frozen dataclass with a ``to_frame`` is ``test_code_rules``' rule.)
"""
import dataclasses

import numpy as np
import pytest

from mlsec_lessons.defenses.smoothing import Certificate
from mlsec_lessons.deployment.audit import AuditReport
from mlsec_lessons.deployment.unsafe_pickle import ScanReport
from mlsec_lessons.federated import masking
from mlsec_lessons.governance.measure import Measurement
from mlsec_lessons.governance.model_card import ModelCard
from mlsec_lessons.grading.batch import Summary
from mlsec_lessons.llm.agent import AgentRun, Decision, ToolCall
from mlsec_lessons.llm.memorization import ExtractedSecrets
from mlsec_lessons.poisoning.neural_cleanse import THRESHOLD, ReversedTriggers


def test_a_certificate_has_a_row_per_input():
    cert = Certificate(np.array([3, -1]), np.array([0.5, 0.0]), np.array([0.9, 0.4]), 0.5, 10, 100, 0.001)
    frame = cert.to_frame()
    assert frame.index.name == "input" and frame["prediction"].tolist() == [3, -1]
    assert frame["radius"].tolist() == [0.5, 0.0] and frame["p_lower"].tolist() == [0.9, 0.4]


def test_one_row_records_show_their_fields_and_stay_frozen():
    report = AuditReport(False, 3, 4, "entry 4: bad mac")
    assert report.to_frame().iloc[0].to_dict() == {"ok": False, "entries": 3, "first_bad": 4, "reason": "entry 4: bad mac"}
    scan = ScanReport("model.pkl", ["posix.system"], [], False)
    assert scan.to_frame()["dangerous"].iloc[0] == ["posix.system"] and scan.flagged
    measured = Measurement("accuracy", 0.9, "held-out digits", n=360, interval=(0.86, 0.93))
    assert measured.to_frame(index="clean").loc["clean", "n"] == 360
    for record in (report, scan, measured):
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.value = 1


def test_a_masking_round_shows_what_the_server_holds_for_each_client():
    vectors = [np.arange(4) + i for i in range(4)]
    result = masking.simulate_round(vectors, threshold=2, dropouts=[1], seed=0)
    frame = result.to_frame()
    assert frame.index.tolist() == [0, 1, 2, 3] and frame["survived"].tolist() == [True, False, True, True]
    assert frame["masked vector y_u"].tolist() == [True, False, True, True]   # the dropped client sent none
    assert frame["secret key"].tolist() == [False, True, False, False]        # its key is rebuilt instead
    assert frame["self-mask seed b_u"].tolist() == [True, False, True, True]


def test_an_agent_run_has_a_row_per_call():
    calls = [(ToolCall("send_email", ("eve@example.com", "the secret")), Decision(False, "the person said no")),
             (ToolCall("search", ("docs",)), Decision(True, "search has no side effect"))]
    frame = AgentRun("...", calls, [], "end").to_frame()
    assert frame["tool"].tolist() == ["send_email", "search"] and frame["allowed"].tolist() == [False, True]
    assert frame["args"].iloc[0] == "eve@example.com, the secret"
    assert AgentRun("...", [], [], "end").to_frame().columns.tolist() == ["tool", "args", "allowed", "reason"]


def test_extracted_secrets_are_ranked_best_first():
    frame = ExtractedSecrets(("1234", "1243"), np.array([-0.5, -3.0])).to_frame()
    assert frame.index.tolist() == [1, 2] and frame.loc[1, "secret"] == "1234" and frame.loc[2, "log_prob"] == -3.0


def test_reversed_triggers_have_a_row_per_class_and_flag_above_the_threshold():
    anomaly = np.array([0.1, THRESHOLD, THRESHOLD + 0.5])
    triggers = ReversedTriggers(np.zeros((3, 2, 2)), np.zeros((3, 2, 2, 1)), np.array([0.9, 0.95, 1.0]),
                                np.array([9.0, 8.0, 1.0]), anomaly)
    frame = triggers.to_frame()
    assert frame.index.name == "class" and frame["flagged"].tolist() == [False, False, True]   # above, not at
    assert frame["mask_l1"].tolist() == [9.0, 8.0, 1.0]


def test_a_model_card_lists_each_measurement_or_why_it_is_missing():
    accuracy = Measurement("accuracy", 0.9, "held-out digits", n=360)
    card = ModelCard.from_measurements("cnn", [accuracy], intended_use="teaching", training_data={"name": "digits"},
                                       not_measured={"privacy": "trained without DP"})
    frame = card.to_frame()
    assert frame.loc["accuracy", "value"] == 0.9 and frame.loc["accuracy", "n"] == 360
    assert frame.loc["privacy", "not measured because"] == "trained without DP"
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.accuracy = Measurement("accuracy", 1.0, "typed in")
    assert dataclasses.replace(card, limitations=("small",)).limitations == ["small"]  # normalised again


def test_a_class_summary_is_its_gradebook():
    students = [("ann", {"ex0": {"score": 3, "total": 5}, "ex1": {"score": 0, "total": 4}}, []),
                ("bob", {"ex0": {"score": 5, "total": 5}, "ex1": {"score": 4, "total": 4}}, [])]
    frame = Summary(students, ["ex0", "ex1"], None, None, None).to_frame()
    assert frame.columns.tolist() == ["student", "ex0", "ex1", "total", "max_total"]
    assert frame.values.tolist() == [["ann", 3, 0, 3, 9], ["bob", 5, 4, 9, 9]]
