"""Fuzzing the server with hypothesis: no request body, header or model name a client can send
gets a 5xx, and every well-formed, in-range request gets a 200 (the oracle for "valid")."""
import json
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_server import MODEL, app_kwargs, make_deployment

from mlsec_lessons.deployment import auth, server

FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CLIENT_ERRORS = {401, 403, 404, 413, 415, 422, 429}
MAX_BODY = 50_000


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    """An httpx client for a live server (real HTTP, not an in-process shortcut) with a valid admin token."""
    d = make_deployment(tmp_path_factory.mktemp("fuzz"))
    tok = auth.issue_token(d.secret, "fuzzer", "admin")
    with server.BackgroundServer(**app_kwargs(d, rate=1e6, burst=10 ** 6, client_rate=1e6, client_burst=10 ** 6,
                                              max_body_bytes=MAX_BODY, max_batch=8)) as srv, \
            httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tok}"}, timeout=20) as client:
        yield client


def post(client, body, headers=None, name=MODEL):
    return client.post(f"/v1/models/{quote(name, safe='')}/predict", content=body,
                       headers={"content-type": "application/json", **(headers or {})})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40)

# valid batches, and arrays near the model's input: right or wrong shape, any float (NaN, inf, out of range)
valid = hnp.arrays(np.float64, st.integers(1, 8).map(lambda n: (n, 8, 8, 1)), elements=st.floats(0, 1))
near_valid = hnp.arrays(
    np.float64,
    st.one_of(st.just((1, 8, 8, 1)), hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=9)),
    elements=st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, 0.5, 1.0]))


@FUZZ
@given(value=json_values, wrap=st.booleans())
def test_any_json_body_is_answered_without_a_5xx(fuzz, value, wrap):
    r = post(fuzz, json.dumps({"instances": value} if wrap else value).encode())
    assert r.status_code in (200, 422), (r.status_code, r.text)


@FUZZ
@given(x=valid | near_valid)
def test_arrays_near_the_input_contract_are_200_exactly_when_valid(fuzz, x):
    body = json.dumps({"instances": x.tolist()}).encode()
    r = post(fuzz, body)
    valid = (x.ndim == 4 and x.shape[1:] == (8, 8, 1) and 1 <= len(x) <= 8
             and bool(np.all(np.isfinite(x))) and bool(np.all((x >= 0) & (x <= 1))))
    # a body over the 50 kB limit is refused before it is parsed, whatever it holds
    expected = 413 if len(body) > MAX_BODY else 200 if valid else 422
    assert r.status_code == expected, (x.shape, len(body), r.status_code, r.text)
    if valid:
        assert len(r.json()["predictions"]) == len(x)


@FUZZ
@given(body=st.binary(max_size=3000))
def test_raw_bytes_are_answered_without_a_5xx(fuzz, body):
    assert post(fuzz, body).status_code in CLIENT_ERRORS


@FUZZ
@given(scheme=st.sampled_from(["", "Bearer ", "bearer ", "Basic "]),
       credential=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=300),
       name=st.text(max_size=30),
       content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8"]))
def test_headers_and_model_names_are_answered_without_a_5xx(fuzz, scheme, credential, name, content_type):
    body = json.dumps({"instances": np.zeros((1, 8, 8, 1)).tolist()}).encode()
    # h11 (the client) refuses header values with surrounding spaces, so none are generated
    r = fuzz.post(f"/v1/models/{quote(name, safe='')}/predict", content=body,
                  headers={"Authorization": (scheme + credential).strip(), "content-type": content_type})
    assert r.status_code in CLIENT_ERRORS, (r.status_code, r.text)


@FUZZ
@given(instances=st.lists(json_values | near_valid.map(lambda a: a.tolist()), min_size=1, max_size=3)
       | valid.map(lambda a: a.tolist()))
def test_fast_and_slow_validation_agree(instances):
    # numpy's fast path and the value-by-value walk must accept and convert exactly the same input
    from mlsec_lessons.deployment.validation import as_array, flatten_instances

    fast = as_array(instances, (8, 8, 1))
    flat = []
    try:
        for i, instance in enumerate(instances):
            flatten_instances(instance, (8, 8, 1), f"instances[{i}]", flat)
    except ValueError:
        assert fast is None
    else:
        assert fast is not None
        np.testing.assert_array_equal(fast, np.asarray(flat).reshape(fast.shape))
