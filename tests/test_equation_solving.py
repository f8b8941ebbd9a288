"""Tramer et al.'s equation-solving attack (lesson 08): exact with full scores, worse when rounded, impossible
with labels only."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlsec_lessons import data
from mlsec_lessons.errors import InvalidParameterError
from mlsec_lessons.theft import (
    ServedClassifier,
    equation_solving,
    parameter_error,
    relative_weights,
    solving_curve,
)


@pytest.fixture(scope="module")
def cancer():
    d = data.load_breast_cancer()
    return d, LogisticRegression(max_iter=1000).fit(d.x_train, d.y_train)


@pytest.fixture(scope="module")
def queries():
    return np.random.default_rng(0).standard_normal((600, 30))   # the scale the API's inputs have


def rounded(decimals):
    return lambda p: np.around(p, decimals)


def test_d_plus_one_queries_recover_the_binary_model_exactly(cancer, queries):
    d, model = cancer
    api = ServedClassifier(model)
    copy = equation_solving(queries[:31], api.predict(queries[:31]))
    assert api.queries == 31
    np.testing.assert_allclose(copy.coef_[1], model.coef_[0], atol=1e-6)
    np.testing.assert_allclose(copy.intercept_[1], model.intercept_[0], atol=1e-6)
    assert parameter_error(copy, model) < 1e-6
    assert np.array_equal(copy.predict(d.x_test), model.predict(d.x_test))


def test_d_queries_are_not_enough(cancer, queries):
    _, model = cancer
    with pytest.raises(InvalidParameterError, match="30 equations for class 1.*not 31 independent"):
        equation_solving(queries[:30], ServedClassifier(model).predict(queries[:30]))


def test_multiclass_softmax_regression_from_d_plus_one_queries():
    d = data.load_digits()
    x_train = d.x_train.reshape(len(d.x_train), -1)
    model = LogisticRegression(max_iter=2000).fit(x_train, d.y_train)
    x = np.random.default_rng(1).random((65, 64))                 # d + 1 = 65 queries for all 10 classes
    copy = equation_solving(x, ServedClassifier(model).predict(x))
    coef, intercept = relative_weights(model)
    np.testing.assert_allclose(copy.coef_, coef, atol=1e-6)
    np.testing.assert_allclose(copy.intercept_, intercept, atol=1e-6)
    x_test = d.x_test.reshape(len(d.x_test), -1)
    assert np.array_equal(copy.predict(x_test), model.predict(x_test))


def test_rounding_degrades_the_solution_and_drops_answers_rounded_to_zero(cancer, queries):
    _, model = cancer
    errors, equations = {}, {}
    for decimals in (None, 4, 2, 1):
        api = ServedClassifier(model, postprocessor=None if decimals is None else rounded(decimals))
        copy = equation_solving(queries, api.predict(queries))
        errors[decimals], equations[decimals] = parameter_error(copy, model), copy.equations_[1]
    assert errors[None] < 1e-9 < errors[4] < errors[2] < errors[1] < 0.5
    assert equations[None] == 600 and equations[None] >= equations[4] > equations[2] > equations[1]


def test_label_only_answers_give_no_equations(cancer, queries):
    _, model = cancer
    answers = ServedClassifier(model, outputs="labels").predict(queries)
    assert set(np.unique(answers)) == {0.0, 1.0}
    with pytest.raises(InvalidParameterError, match="answers give 0 equations"):
        equation_solving(queries, answers)


def test_the_curve_marks_unsolvable_budgets(cancer, queries):
    d, model = cancer
    answers = ServedClassifier(model, postprocessor=rounded(1)).predict(queries)
    rows = solving_curve(queries, answers, [31, 600], model, d.x_test)
    assert np.isnan(rows[0]["parameter error"]) and rows[0]["equations"] < 31
    assert 0 < rows[1]["parameter error"] < 0.5 and rows[1]["fidelity"] >= 0.95
    with pytest.raises(InvalidParameterError, match="budget 601"):
        solving_curve(queries, answers, [601], model, d.x_test)


@pytest.mark.parametrize("answers, match", [
    (np.full(31, 0.5), "one row of k >= 2"),
    (np.full((31, 1), 0.5), "one row of k >= 2"),
    (np.full((31, 2), 1.5), r"probabilities in \[0, 1\]"),
    (np.full((30, 2), 0.5), "x has 31 queries but answers has 30"),
])
def test_bad_answers_are_refused_by_name(queries, answers, match):
    with pytest.raises(InvalidParameterError, match=match):
        equation_solving(queries[:31], answers)


def test_the_exactness_check_can_fail(cancer, queries):
    """A victim whose scores are not a logistic function of x: the solved weights are wrong."""
    d, model = cancer
    p = model.predict_proba(queries)[:, 1] ** 3                      # a different link function
    copy = equation_solving(queries, np.column_stack([1 - p, p]))
    assert parameter_error(copy, model) > 0.01
