"""Improper output handling (OWASP LLM05:2025): a model's reply is untrusted input to what consumes it.

A reply pasted into a web page is HTML; a reply pasted into a query is SQL. Whoever can steer the
model (a user, an injected document) then writes the page's script or the database's query. The
fixes are the old ones, applied to the model's output as to any other input: escape it for HTML,
and pass it to the database as a bound parameter, never as text of the query.

Each sink comes twice here, the mistake and the fix, so a lesson can run the same reply through
both, and :func:`executable_html` says, from a real HTML parser, whether a page would run script.

Examples
--------
>>> reply = '<img src=x onerror="alert(1)">'
>>> executable_html(render_reply_unsafe(reply)), executable_html(render_reply(reply))
(['<img onerror>'], [])
>>> db = demo_database()
>>> len(find_orders_unsafe(db, "x' OR '1'='1")), len(find_orders(db, "x' OR '1'='1"))
(3, 0)
"""
import html
import sqlite3
from html.parser import HTMLParser

from ..errors import ParameterTypeError

# the attribute values that run script when the element is used (a link followed, a frame loaded)
SCRIPT_URL_SCHEMES = ("javascript:", "vbscript:", "data:text/html")
URL_ATTRIBUTES = ("href", "src", "action", "formaction", "xlink:href", "data")


def _text(reply, name="reply"):
    if not isinstance(reply, str):
        raise ParameterTypeError(f"{name} must be a str (the model's decoded output), got {type(reply).__name__}")
    return reply


# --------------------------------------------------------------------------- HTML
def render_reply_unsafe(reply):
    """The reply pasted into the page as it is: the mistake. Markup in the reply becomes markup."""
    return f'<div class="reply">{_text(reply)}</div>'


def render_reply(reply):
    """The reply escaped for HTML text and attribute values (``& < > " '``): it shows as text."""
    return f'<div class="reply">{html.escape(_text(reply), quote=True)}</div>'


class _ScriptFinder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}>")
            elif name in URL_ATTRIBUTES and value and value.strip().lower().startswith(SCRIPT_URL_SCHEMES):
                self.found.append(f"<{tag} {name}={value.strip().split(':')[0].lower()}:>")

    handle_startendtag = handle_starttag


def executable_html(page):
    """What in ``page`` would run script in a browser: script-bearing elements, event-handler
    attributes (``onerror=``) and ``javascript:`` URLs, as found by Python's HTML parser.

    A list of findings such as ``['<script>', '<img onerror>']``; empty when nothing would run.
    This is a check for the course's demonstrations, not a sanitizer: a page it passes can still
    be unsafe in ways it does not look for (CSS, SVG animations, a browser's parsing quirks).
    Escaping (:func:`render_reply`) is the defence; this only shows whether it worked.
    """
    finder = _ScriptFinder()
    finder.feed(_text(page, "page"))
    finder.close()
    return finder.found


# --------------------------------------------------------------------------- SQL
ORDERS = [("alice", "3 notebooks", 12.5), ("bob", "a keyboard", 49.0), ("carol", "2 monitors", 310.0)]
SECRETS = [("admin_password", "tangerine-7")]


def demo_database():
    """An in-memory SQLite database: ``orders(customer, item, total)`` and a ``secrets`` table
    the application never means to show."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE orders (customer TEXT, item TEXT, total REAL)")
    db.execute("CREATE TABLE secrets (name TEXT, value TEXT)")
    db.executemany("INSERT INTO orders VALUES (?, ?, ?)", ORDERS)
    db.executemany("INSERT INTO secrets VALUES (?, ?)", SECRETS)
    db.commit()
    return db


def find_orders_unsafe(db, customer):
    """The customer name the model extracted, pasted into the query text: the mistake. A quote
    in it ends the string, and the rest is SQL (``' OR '1'='1``, ``' UNION SELECT ...``)."""
    query = f"SELECT customer, item, total FROM orders WHERE customer = '{_text(customer, 'customer')}'"
    return db.execute(query).fetchall()


def find_orders(db, customer):
    """The name passed as a bound parameter: the database treats it as a value, whatever it holds."""
    return db.execute("SELECT customer, item, total FROM orders WHERE customer = ?",
                      (_text(customer, "customer"),)).fetchall()
