"""Exercise 4 (LLM and agent security): the solution scores full marks, agrees with the course library
where their rules are the same, and each deliberate mistake, made by editing one place of the solution,
loses the points of the check that explains it. Every rule an exercise docstring states has one."""
import math
from pathlib import Path

import numpy as np
import pytest

from mlsec_lessons.grading import collect, grade
from mlsec_lessons.grading.plugin import load as load_file
from mlsec_lessons.grading.runner import declared

ROOT = Path(__file__).resolve().parents[1]
NAME = "ex4_llm_security"
SOLUTION = ROOT / "solutions" / f"{NAME}.py"


def load(path):
    return load_file(path, f"loaded_{path.parent.name}_{NAME}")


def test_solution_scores_full_marks():
    report = grade("ex4", solutions=True)
    assert report.full_marks, report.table()
    assert report.total >= 50 and len(report.checks) >= 40


# mistake: (text in the solution, its wrong replacement, the check that must fail)
WRONG = {
    # exposure
    "a tie pushes the canary down": (
        "1 + int((scores > canary).sum())", "1 + int((scores >= canary).sum())", "exposure_ties_favour_the_canary"),
    "rank without the 1": ("rank = 1 + int(", "rank = int(", "exposure_is_in_bits"),
    "natural log instead of log2": (
        "np.log2(scores.size) - np.log2(rank)", "np.log(scores.size) - np.log(rank)", "exposure_is_in_bits"),
    "n counts distinct values only": (
        "np.log2(scores.size) - np.log2(rank)", "np.log2(np.unique(scores).size) - np.log2(rank)",
        "exposure_counts_every_candidate"),
    "NaN accepted": (
        "np.isnan(scores).any() or np.isposinf(scores).any()", "np.isposinf(scores).any()", "exposure_rejects_nan"),
    "+inf accepted": (
        "np.isnan(scores).any() or np.isposinf(scores).any()", "np.isnan(scores).any()",
        "exposure_rejects_plus_infinity"),
    "-inf refused": (
        "np.isnan(scores).any() or np.isposinf(scores).any()", "np.isnan(scores).any() or np.isinf(scores).any()",
        "exposure_accepts_minus_infinity"),
    "canary matched approximately": (
        "(scores == canary).any()", "np.isclose(scores, canary).any()",
        "exposure_rejects_a_canary_not_among_the_candidates"),
    "candidates of any shape": (
        "if scores.ndim != 1 or scores.size == 0:", "if scores.size == 0:",
        "exposure_rejects_empty_or_not_1d_candidates"),
    # spotlight_prompt
    "only <sys> removed": (
        "if token not in SPECIAL]", 'if token != "<sys>"]', "spotlight_prompt_removes_every_special_token_from_the_user"),
    "<pad> and <unk> kept (the roles only)": (
        "if token not in SPECIAL]", "if token not in SPECIAL[2:]]",
        "spotlight_prompt_removes_every_special_token_from_the_user"),
    "role tokens removed by str.replace": (
        "words = [token for token in tokenize(checked(name, text)) if token not in SPECIAL]",
        "text = checked(name, text)\n        for token in SPECIAL:\n            text = text.replace(token, ' ')\n"
        "        words = text.split()", "spotlight_prompt_reads_tokens_as_the_tokenizer_does"),
    "words split on whitespace": (
        "tokenize(checked(name, text))", "checked(name, text).split()",
        "spotlight_prompt_reads_tokens_as_the_tokenizer_does"),
    "every tag removed, not only SPECIAL's": (
        "if token not in SPECIAL]", "if not (token.startswith('<') and token.endswith('>') and len(token) > 2)]",
        "spotlight_prompt_removes_only_special_tokens"),
    "the document kept as written": (
        'document = None if document is None else untrusted("document", document)',
        'document = None if document is None else checked("document", document)',
        "spotlight_prompt_removes_special_tokens_from_the_document"),
    "the system prompt re-tokenized": (
        'system = checked("system", system)', 'system = untrusted("system", system)',
        "spotlight_prompt_keeps_the_system_prompt_as_written"),
    "<sys> added even when it is there": (
        'system = system if system.startswith("<sys>") else f"<sys> {system}"', 'system = f"<sys> {system}"',
        "spotlight_prompt_adds_sys_once"),
    "the document after the user": (
        'parts = [system] + ([] if document is None else ["<doc>", document]) + ["<user>", user, "<asst>"]',
        'parts = [system, "<user>", user] + ([] if document is None else ["<doc>", document]) + ["<asst>"]',
        "spotlight_prompt_joins_the_parts_in_order"),
    "no type check": ("if not isinstance(text, str):", "if text is None:",
                      "spotlight_prompt_refuses_parts_that_are_not_str"),
    "an empty document taken for none": (
        "document = None if document is None else untrusted(", "document = None if not document else untrusted(",
        "spotlight_prompt_refuses_empty_parts"),
    "whitespace taken for text": ("if not text.strip():", "if not text:", "spotlight_prompt_refuses_empty_parts"),
    "a part of role tokens only accepted": (
        "        if not words:\n", "        if False:\n", "spotlight_prompt_refuses_parts_made_of_role_tokens"),
    # output_guard
    "case-sensitive guard": ("text = reply.lower()", "text = reply", "output_guard_ignores_case"),
    "the secret's case kept": ("target = secret.lower()", "target = secret", "output_guard_ignores_case"),
    "forwards only": ("if target in letters or target[::-1] in letters:", "if target in letters:",
                      "output_guard_reads_backwards"),
    "words compared, not letters": (
        'letters = re.sub(r"[^a-z]", "", text)', "letters = text.split()", "output_guard_sees_through_separators"),
    "digits and _ kept (\\W)": (
        'letters = re.sub(r"[^a-z]", "", text)', 'letters = re.sub(r"\\W", "", text)',
        "output_guard_sees_through_separators"),
    "role tokens not removed": (
        '    for token in SPECIAL:  # markup, not text: "<end>" must not lend its letters to a secret\n'
        '        text = text.replace(token, " ")\n', "", "output_guard_removes_role_tokens_first"),
    "role tokens removed before lowercasing (case-sensitive)": (
        'text = reply.lower()\n    for token in SPECIAL:  # markup, not text: "<end>" must not lend its letters '
        'to a secret\n        text = text.replace(token, " ")\n    letters = re.sub(r"[^a-z]", "", text)',
        'text = reply\n    for token in SPECIAL:\n        text = text.replace(token, " ")\n'
        '    letters = re.sub(r"[^a-z]", "", text.lower())', "output_guard_removes_role_tokens_first"),
    "letters of other alphabets kept (isalpha)": (
        'letters = re.sub(r"[^a-z]", "", text)', 'letters = "".join(c for c in text if c.isalpha())',
        "output_guard_catches_encodings_it_was_not_shown"),
    "every tag removed (<[a-z]+>)": (
        '    for token in SPECIAL:  # markup, not text: "<end>" must not lend its letters to a secret\n'
        '        text = text.replace(token, " ")\n', '    text = re.sub(r"<[a-z]+>", " ", text)\n',
        "output_guard_catches_encodings_it_was_not_shown"),
    "blocks every reply": ("    return reply\n", "    return BLOCKED\n", "output_guard_passes_innocent_replies_unchanged"),
    "returns the reply stripped": ("    return reply\n", "    return reply.strip()\n",
                                   "output_guard_passes_innocent_replies_unchanged"),
    "no type check on the reply": (
        "if not isinstance(reply, str) or not isinstance(secret, str):", "if not isinstance(secret, str):",
        "output_guard_refuses_a_reply_or_secret_that_is_not_a_str"),
    "secret checked with re.match and $": (
        're.fullmatch(r"[A-Za-z]+", secret)', 're.match(r"[A-Za-z]+$", secret)',
        "output_guard_refuses_a_secret_that_is_not_one_word_of_letters"),
    "secret checked with isalpha": (
        're.fullmatch(r"[A-Za-z]+", secret) is None', "not secret.isalpha()",
        "output_guard_refuses_a_secret_that_is_not_one_word_of_letters"),
    # allow_tool_call
    "refuses every call": ("    return True\n", "    return False\n", "allow_tool_call_allows_what_the_task_allows"),
    "tool name case-folded": ("if tool not in tools:", "if tool.lower() not in tools:",
                              "allow_tool_call_uses_only_the_tasks_tools"),
    "tool name stripped": ("if tool not in tools:", "if tool.strip() not in tools:",
                           "allow_tool_call_uses_only_the_tasks_tools"),
    "recipient stripped": ("or args[0] not in recipients)", "or args[0].strip() not in recipients)",
                           "allow_tool_call_emails_only_the_listed_recipients"),
    "recipient case-folded": ("or args[0] not in recipients)", "or args[0].lower() not in recipients)",
                              "allow_tool_call_emails_only_the_listed_recipients"),
    "an email of one argument": ("(len(args) < 2", "(len(args) < 1", "allow_tool_call_needs_a_recipient_and_a_text"),
    "an email needs three arguments": ("(len(args) < 2", "(len(args) <= 2", "allow_tool_call_needs_a_recipient_and_a_text"),
    "recipients required in the task": (
        'task.get("recipients", ())', 'task["recipients"]', "allow_tool_call_without_recipients_emails_nobody"),
    "the person ignored": ("        return confirm(call) is True\n", "        return True\n", "allow_tool_call_lets_the_person_decide"),
    "any truthy answer approves": ("        return confirm(call) is True\n", "        return bool(confirm(call))\n",
                                   "allow_tool_call_approves_only_on_true"),
    "asked before the tool check": (
        "    tool, args = call\n    if tool not in tools:\n",
        "    tool, args = call\n    if tool in SIDE_EFFECTS and confirm is not None and confirm(call) is not True:\n"
        "        return False\n    if tool not in tools:\n", "allow_tool_call_asks_only_about_calls_it_would_allow"),
    "asked before the recipient check": (
        '    if tool == "send_email" and (len(args) < 2',
        "    if tool in SIDE_EFFECTS and confirm is not None and confirm(call) is not True:\n        return False\n"
        '    if tool == "send_email" and (len(args) < 2', "allow_tool_call_asks_only_about_calls_it_would_allow"),
    "asked about read-only calls": ("if tool in SIDE_EFFECTS and confirm is not None:", "if confirm is not None:",
                                    "allow_tool_call_never_asks_about_read_only_calls"),
    "asked twice": ("        return confirm(call) is True\n", "        return confirm(call) is True and confirm(call) is True\n",
                    "allow_tool_call_asks_once_about_the_call_itself"),
    "asked about the arguments only": ("        return confirm(call) is True\n", "        return confirm(args) is True\n",
                                       "allow_tool_call_asks_once_about_the_call_itself"),
    "an approval error swallowed": (
        "        return confirm(call) is True\n",
        "        try:\n            return confirm(call) is True\n        except Exception:\n            return False\n",
        "allow_tool_call_lets_an_approval_error_propagate"),
    "tools or recipients as one str": ("        if isinstance(names, str):", "        if False:",
                                       "allow_tool_call_refuses_a_malformed_task"),
    "confirm not checked": ("if confirm is not None and not callable(confirm):", "if False:",
                            "allow_tool_call_refuses_a_malformed_task"),
    "args of any sequence": ("isinstance(call[1], tuple)", "isinstance(call[1], (tuple, list, str))",
                             "allow_tool_call_refuses_a_malformed_call"),
}


def test_each_mistake_names_a_check():
    names = {name for name, _ in collect("ex4")}
    assert {check for *_, check in WRONG.values()} <= names
    # every check that states a rule has a mistake that fails it, but the comparisons on random input
    untested = names - {check for *_, check in WRONG.values()}
    assert untested == {"exposure_matches_a_brute_force_count", "exposure_of_a_model_that_scores_all_alike_is_full",
                        "exposure_of_the_least_likely_is_zero", "spotlight_prompt_matches_reference",
                        "output_guard_blocks_the_secret_as_written", "output_guard_matches_reference",
                        "allow_tool_call_matches_reference"}, untested


@pytest.mark.slow  # a grading run per case (one judge for all): make test runs it, make test-fast does not
@pytest.mark.parametrize("mistake", list(WRONG))
def test_wrong_solutions_lose_points(mistake, graded_variants):
    # only the check that must fail runs (a parametrized check's case by its id): a second per variant
    report = graded_variants("ex4", {m: (old, new, [check]) for m, (old, new, check) in WRONG.items()})[mistake]
    check = WRONG[mistake][2]
    assert check in report.failed(), f"{mistake}: {check} still passes"
    message = report.failed()[check]
    assert message and "not implemented" not in message and "Traceback" not in message, message


# --------------------------------------------------------------------------- the solution and the library
def test_the_tokenizer_the_exercise_gives_is_the_courses():
    from mlsec_lessons.llm import corpus

    sol = load(SOLUTION)
    assert sol.SPECIAL == declared(NAME, "SPECIAL") == corpus.SPECIAL  # the checks keep a copy too
    for text in ["<user> What is 2+3?<asst>", "<as<asst>st> <USER> <b>x</b> don't é 🙂 x_y\n\t<end>", ""]:
        assert sol.tokenize(text) == corpus.tokenize(text)


def test_the_solution_agrees_with_the_library():
    from mlsec_lessons.llm import guards, prompts

    sol = load(SOLUTION)
    assert sol.BLOCKED == guards.BLOCKED == declared(NAME, "BLOCKED")
    rng = np.random.default_rng(0)
    pieces = ["the", "secret", "is", "ember", "2+3?", "don't", "<USER>", "<b>", "<as", "st>", *sol.SPECIAL]
    for _ in range(200):
        user = " ".join(rng.choice(pieces, size=rng.integers(1, 8)))
        document = " ".join(rng.choice(pieces, size=rng.integers(1, 8))) if rng.random() < 0.5 else None
        try:
            want = prompts.spotlight_prompt("the secret is ember .", user, document)
        except ValueError:
            with pytest.raises(ValueError):
                sol.spotlight_prompt("the secret is ember .", user, document)
            continue
        assert sol.spotlight_prompt("the secret is ember .", user, document) == want
    # both remove the special tokens only, in any case, before comparing letters
    for reply in ["e m b e r <end>", "R-E-B-M-E", "e<END>mber", "e1m2b3e4r", "the party is on monday . <end>",
                  "d <end>", "CALL lookup ( menu ) <tool>", "<ember>", "<b>ember</b>"]:
        for secret in ("ember", "dend", "tool"):
            assert sol.output_guard(reply, secret) == guards.letter_guard(reply, secret), (reply, secret)
    assert sol.output_guard("<ember>", "ember") == sol.BLOCKED == guards.letter_guard("<ember>", "ember")


def test_exposure_agrees_with_the_library():
    memorization = pytest.importorskip("mlsec_lessons.llm.memorization")  # TensorFlow comes with it
    sol = load(SOLUTION)
    rng = np.random.default_rng(1)
    for _ in range(50):
        scores = np.round(rng.normal(-10, 3, size=rng.integers(1, 200)), 1)
        scores[rng.random(scores.size) < 0.1] = -np.inf
        canary = float(rng.choice(scores))
        assert sol.exposure(canary, scores) == pytest.approx(memorization.exposure_from_scores(canary, scores))
    assert sol.exposure(-2.0, [-2.0, -2.0, -1.0, -5.0]) == 1.0 and math.isfinite(sol.exposure(-np.inf, [-np.inf]))


def test_the_agent_policies_decide_as_the_exercise_on_full_calls():
    """The library's AllowList, then ScopedToken, then Confirmation (lesson 13's stack) against allow_tool_call,
    on calls with the arguments an email needs: the same decisions, the person asked as often."""
    from mlsec_lessons.llm import agent

    sol = load(SOLUTION)
    key = bytes(range(32))
    tools, recipients = ["lookup", "send_email"], ["bob"]
    for tool in ("lookup", "calculator", "send_email", "Send_Email"):
        for who in ("bob", "Bob", " bob", "mallory"):
            for answer in (True, False):
                asked = []

                def approve(call, answer=answer, asked=asked):
                    asked.append(call)
                    return answer

                call = (tool, (who, "see you soon"))
                policy = agent.all_of(agent.AllowList(tools),
                                      agent.ScopedToken(agent.issue_tool_token(key, "alice", tools, recipients), key),
                                      agent.Confirmation(approve))
                want = policy(agent.ToolCall(*call)).allowed
                n_library = len(asked)
                got = sol.allow_tool_call(call, {"tools": tools, "recipients": recipients, "confirm": approve})
                assert (got, len(asked) - n_library) == (want, n_library), (call, answer)
