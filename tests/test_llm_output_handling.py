"""Improper output handling (mlsec_lessons/llm/output_handling.py): the model's reply, pasted into
HTML or SQL, runs as script or as a query; escaping and bound parameters stop each payload."""
import sqlite3

import pytest

from mlsec_lessons.errors import ParameterTypeError
from mlsec_lessons.llm.output_handling import (
    ORDERS,
    SECRETS,
    demo_database,
    executable_html,
    find_orders,
    find_orders_unsafe,
    render_reply,
    render_reply_unsafe,
)

XSS = {
    "script tag": "<script>fetch('/steal?c=' + document.cookie)</script>",
    "event handler": '<img src=x onerror="alert(1)">',
    "svg onload": "<svg onload=alert(1)>",
    "javascript url": '<a href="javascript:alert(1)">your receipt</a>',
    "attribute breakout": '"><script>alert(1)</script>',
    "mixed case": "<ScRiPt>alert(1)</sCrIpT>",
}


@pytest.mark.parametrize("payload", list(XSS.values()), ids=list(XSS))
def test_a_reply_pasted_into_html_runs_and_escaped_does_not(payload):
    assert executable_html(render_reply_unsafe(payload)), payload
    safe = render_reply(payload)
    assert executable_html(safe) == []
    assert "<script" not in safe.lower() and "<img" not in safe


def test_plain_replies_are_left_alone():
    reply = "Your order of 3 notebooks costs 12.50 & ships today."
    assert executable_html(render_reply_unsafe(reply)) == executable_html(render_reply(reply)) == []
    assert render_reply(reply) == '<div class="reply">Your order of 3 notebooks costs 12.50 &amp; ships today.</div>'


def test_the_html_check_can_fail_on_each_kind():
    assert executable_html("<p>hi</p><a href='https://example.org'>x</a>") == []
    assert executable_html("<script>1</script>") == ["<script>"]
    assert executable_html('<body onload="x()">') == ["<body onload>"]
    assert executable_html('<a href=" JavaScript:x()">') == ["<a href=javascript:>"]


SQL = {
    "always true": ("x' OR '1'='1", len(ORDERS)),
    "union with the secrets": ("x' UNION SELECT name, value, 0 FROM secrets --", len(SECRETS)),
}


@pytest.mark.parametrize("payload, rows", list(SQL.values()), ids=list(SQL))
def test_a_name_pasted_into_sql_is_sql_and_bound_it_is_a_value(payload, rows):
    db = demo_database()
    leaked = find_orders_unsafe(db, payload)
    assert len(leaked) == rows
    assert find_orders(db, payload) == []
    if "secrets" in payload:
        assert ("admin_password", "tangerine-7", 0) in leaked


def test_a_real_name_is_found_both_ways():
    db = demo_database()
    assert find_orders_unsafe(db, "bob") == find_orders(db, "bob") == [("bob", "a keyboard", 49.0)]
    assert find_orders(db, "o'brien") == []  # a quote in a bound value is just a character
    with pytest.raises(sqlite3.OperationalError):  # the same quote breaks the pasted query
        find_orders_unsafe(db, "o'brien")


@pytest.mark.parametrize("call", [render_reply, render_reply_unsafe, executable_html,
                                  lambda v: find_orders(demo_database(), v)])
def test_a_reply_that_is_not_text_is_refused(call):
    with pytest.raises(ParameterTypeError, match="must be a str"):
        call(b"<script>")
