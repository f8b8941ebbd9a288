"""What a post-quantum signature costs: key and signature sizes, sign and verify times of Ed25519,
ML-DSA-65 (FIPS 204) and lesson 07's hybrid of both, as ratios to Ed25519 measured in the same run.

The message is a model manifest like lesson 07's (two file hashes, the input contract, context,
version and validity), a few hundred bytes. Ed25519 and ML-DSA-65 are timed as bare
``cryptography`` calls on the hybrid's exact message; the hybrid row is
``hybrid.sign_manifest_hybrid`` / ``verify_manifest_hybrid`` end to end (JSON and base64 included).
Each time is the median of ``SAMPLES`` calls, interleaved scheme by scheme so that a busy machine
slows all of them alike.

Run: ``python benchmarks/run.py signatures``.
"""
import base64
import json
import statistics
import time

SAMPLES = 2000
CONTEXT = "digits-classifier/production"


def _median_us(fn, samples=SAMPLES):
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def run():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

    from mlsec_lessons.deployment import hybrid

    key = hybrid.generate_hybrid_key()
    pub = key.public_key()
    manifest = {"hash": "sha256", "files": {"model.keras": "ab" * 32, "input.json": "cd" * 32},
                "input": {"shape": [64], "min": 0.0, "max": 1.0}}
    body, sigs = hybrid.sign_manifest_hybrid(manifest, key, context=CONTEXT, version=1, valid_for_s=3600)
    ctx = CONTEXT.encode()
    message = hybrid.DOMAIN + bytes([len(ctx)]) + ctx + body
    ed_sig, ml_sig = key.ed25519.sign(message), key.mldsa.sign(message, ctx)

    timings = {name: {"keygen": [], "sign": [], "verify": []} for name in ("ed25519", "ml-dsa-65", "hybrid")}
    calls = {
        "ed25519": {"keygen": Ed25519PrivateKey.generate, "sign": lambda: key.ed25519.sign(message),
                    "verify": lambda: pub.ed25519.verify(ed_sig, message)},
        "ml-dsa-65": {"keygen": MLDSA65PrivateKey.generate, "sign": lambda: key.mldsa.sign(message, ctx),
                      "verify": lambda: pub.mldsa.verify(ml_sig, message, ctx)},
        "hybrid": {"keygen": hybrid.generate_hybrid_key,
                   "sign": lambda: hybrid.sign_manifest_hybrid(manifest, key, context=CONTEXT, version=1,
                                                               valid_for_s=3600),
                   "verify": lambda: hybrid.verify_manifest_hybrid(body, sigs, pub, context=CONTEXT)},
    }
    for _ in range(5):   # interleave: five rounds of every scheme and operation
        for name, ops in calls.items():
            for op, fn in ops.items():
                timings[name][op].append(_median_us(fn, SAMPLES // 5))
    us = {name: {op: statistics.median(v) for op, v in ops.items()} for name, ops in timings.items()}

    raw_pub = {"ed25519": len(pub.ed25519.public_bytes_raw()), "ml-dsa-65": len(pub.mldsa.public_bytes_raw())}
    raw_pub["hybrid"] = raw_pub["ed25519"] + raw_pub["ml-dsa-65"]
    raw_sig = {"ed25519": len(ed_sig), "ml-dsa-65": len(ml_sig)}
    raw_sig["hybrid"] = sum(len(base64.b64decode(s)) for s in sigs.values())
    ed_file = len(base64.b64encode(ed_sig)) + 1            # MANIFEST.sig as artifacts.sign_dir writes it
    sig_file = {"ed25519": ed_file, "ml-dsa-65": len(base64.b64encode(ml_sig)) + 1,
                "hybrid": len(json.dumps(sigs, indent=2, sort_keys=True)) + 1}

    rows = []
    base = us["ed25519"]
    for name, label in (("ed25519", "Ed25519 (peer)"), ("ml-dsa-65", "ML-DSA-65 (FIPS 204)"),
                        ("hybrid", "hybrid: both, both required")):
        rows.append([label, raw_pub[name], f"{raw_pub[name] / raw_pub['ed25519']:.0f}", raw_sig[name],
                     f"{raw_sig[name] / raw_sig['ed25519']:.0f}", sig_file[name],
                     f"{us[name]['keygen']:.0f}", f"{us[name]['sign']:.0f}", f"{us[name]['sign'] / base['sign']:.1f}",
                     f"{us[name]['verify']:.0f}", f"{us[name]['verify'] / base['verify']:.1f}"])
    return {
        "title": "Signatures: Ed25519, ML-DSA-65 and the hybrid of both",
        "columns": ["scheme", "public key bytes", "x Ed25519", "signature bytes", "x Ed25519",
                    "MANIFEST.sig bytes", "keygen µs", "sign µs", "x Ed25519", "verify µs", "x Ed25519"],
        "rows": rows,
        "notes": (f"Message: a {len(body)}-byte model manifest (context {CONTEXT!r}, version, validity, two "
                  f"file hashes), prefixed with the hybrid's domain and context ({len(message)} bytes signed). "
                  f"Raw key and signature sizes; 'MANIFEST.sig bytes' is the file as written (base64, and JSON "
                  f"for the hybrid). Times: median of {SAMPLES // 5} calls, in 5 rounds interleaved across "
                  f"schemes, median of the rounds; one thread. The hybrid row runs lesson 07's "
                  f"`sign_manifest_hybrid` / `verify_manifest_hybrid` end to end (JSON, base64 and the checks "
                  f"of context, expiry and version included). Private keys are stored as 32-byte seeds for "
                  f"both schemes (PKCS#8). ML-DSA signing is randomized (hedged), so its time varies more "
                  f"than Ed25519's."),
    }
