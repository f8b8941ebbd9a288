"""Secure deployment: a real model server and the controls around it (lesson 07).

* ``auth``: JWT with PyJWT (pinned algorithm, required claims, 401 vs 403)
* ``ratelimit``: a token bucket per token subject (429 + Retry-After), a query quota, a token budget
* ``validation``: body size (413), then JSON, shape, type, finiteness and range (422)
* ``headers``: the OWASP security headers every response carries
* ``server``: the model server's public names: ``create_app``, ``ServerSettings``, ``BackgroundServer``, ``serve``
  (its parts: ``settings``, ``app``, ``served``, ``middleware``, ``errors``, ``hooks``, ``runner``)
* ``language_model``: lesson 13's transformer served on the same endpoints: a signed directory
  (``save_language_model``), prompts checked, role tokens refused, a token budget (OWASP LLM10)
* ``tls``: a self-signed certificate for HTTPS on your own machine
* ``keys``, ``artifacts``: development keys; signed, encrypted, safely loaded model artifacts
* ``hybrid``: a manifest signed with Ed25519 and ML-DSA-65 (post-quantum), both required, with a context,
  a version and an expiry against replay
* ``audit``: the HMAC-chained, tamper-evident audit log
* ``unsafe_pickle``: why the course never unpickles a model
* ``response_signing``: Ed25519-signed prediction responses, verified by the client (lesson 11, OWASP ML09)

Submodules are imported on first use (``from mlsec_lessons.deployment import server``), so
importing the package does not pull in FastAPI or TensorFlow.
"""
