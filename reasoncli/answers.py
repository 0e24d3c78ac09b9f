"""Final answers: pull them out of generated text, canonicalise them and decide equivalence.

Votes group branches by *answer*, not by whole text, so extraction has to be forgiving (models
phrase answers many ways, and a branch may be cut off mid-sentence) while equivalence has to be
mathematical ("0.5", "1/2" and "\\frac{1}{2}" are one vote). Cheap exact checks run first;
math-verify is the slow, thorough fallback, run in a child process with a hard time limit
(math_verify_child.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from reasoncli import math_verify_child

__all__ = [
    "AnswerGroup",
    "answers_equivalent",
    "extract_answer",
    "final_answer_span",
    "group_answers",
    "is_incomplete",
    "is_unevaluated",
    "is_yes_no_question",
    "normalize_answer",
]

# Inputs longer than this skip math-verify: sympy's time grows quickly with length.
MATH_VERIFY_MAX_CHARS = 200
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "The answer is X", "the final answer is: X", "Final Answer: X", "Answer: X".
_PHRASE_RE = re.compile(r"\banswer\s+is\b\s*:?[ \t]*|\banswer(?:\*\*)?\s*:[ \t]*", re.IGNORECASE)
# Only the explicit forms count as a well-formatted final statement (see rewards.format_reward).
_STRICT_PHRASE_RE = re.compile(
    r"\b(?:the\s+(?:final\s+)?answer\s+is\b\s*:?|final\s+answer(?:\*\*)?\s*:)[ \t]*",
    re.IGNORECASE,
)
_GSM8K_RE = re.compile(r"####[ \t]*")
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
_NUMBER_RE = re.compile(rf"(?:(?<![\w)\]}}])-)?{_NUMBER}(?![\d])")
# "42 apples", "5, since ..." -> the number; "(3, 4)", "2x + 1" and "5 x 12" are left alone.
_LEADING_NUMBER_UNITS_RE = re.compile(
    rf"^(-?{_NUMBER})(?:\s+|,\s*)(?!(?:x|times|plus|minus|divided|multiplied|over)\b)[A-Za-z]",
    re.IGNORECASE,
)
# An arithmetic expression of plain numbers, not worked out: "17 - 14", "6 * 11", "5 x 12".
# Fractions ("1/2"), powers and factorials are exact values in the usual notation, not this.
_OPERATOR = r"(?:[-+*×÷·]|\\times|\\cdot|\\div|x(?=\s))"
_UNEVALUATED_RE = re.compile(rf"^\(?-?{_NUMBER}\)?(?:\s*{_OPERATOR}\s*\(?-?{_NUMBER}\)?)+$")
# A fragment that stops where more must follow: an operator, "=", an open bracket.
_INCOMPLETE_RE = re.compile(r"(?:[-+*/×÷·^=_({\[]|\\(?:times|cdot|div|frac|sqrt))\s*$")
_YES_NO = {"yes": "Yes", "no": "No", "true": "True", "false": "False"}
# Replies that open with these say yes ("Absolutely, penguins ...").
_AFFIRMATIVE_OPENING_RE = re.compile(
    r"^[\W_]*(?:absolutely|certainly|definitely|of course)\b[*_]*[,.!]", re.IGNORECASE
)
# "No, ...", "**Yes.**", "no" alone; not "No numbers here" or "no more than 5".
_FIRST_WORD_RE = re.compile(r"^[\W_]*([A-Za-z]+)(?=[*_]*(?:[.,;:!)]|\s*$))")
# A yes/no question opens with an auxiliary verb: "Is 1001 prime?", "Can a penguin fly?".
_POLAR_QUESTION_RE = re.compile(
    r"^(?:is|are|was|were|am|do|does|did|can|could|will|would|should|shall|has|have|had|may|"
    r"might|must)(?:n't)?\b",
    re.IGNORECASE,
)
_NEGATION_RE = re.compile(
    r"\b(?:not|no|never|cannot|neither|nor|none)\b|n't\b|\bcan not\b", re.IGNORECASE
)
_CONCLUSION_RE = re.compile(
    r"^\W*(?:so|thus|hence|therefore|in conclusion|in summary|overall)\b", re.IGNORECASE
)
_ASKED_RE = re.compile(r"(?:[^.!?\n]|\.(?=\d))*\?")  # a sentence that asks; "0.5" is one word
_SAID_YES_NO_RE = re.compile(r"\b(yes|no)\b(?=\s*[,.!;:])", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
_NEGATIONS = frozenset(["not", "never", "cannot", "no"])
# "15 is an odd number" answers "Is 15 an even number?": opposites, as stems.
_OPPOSITE_PAIRS = (("even", "odd"), ("prim", "comp"), ("rati", "irra"), ("posi", "nega"))
_OPPOSITES = {a: b for pair in _OPPOSITE_PAIRS for a, b in (pair, pair[::-1])}
# Words of a question that say nothing about what it asks.
_QUESTION_STOPWORDS = frozenset(
    "a an the of to in on at by for with and or it its this that these those there here be is "
    "are was were am do does did can could will would should shall has have had may might must "
    "than number numbers value true really actually".split()
)
# Words that make up non-answers small models write after "the answer is": "the final
# answer", "correct", "indeed", a template's placeholder "X".
_FILLER_WORDS = frozenset(
    "a an the this that it is was final answer answers correct right indeed still same above "
    "below follows following question problem solution which where x".split()
)
_MATH_DELIMITERS_RE = re.compile(r"^\\[(\[](.*)\\[)\]]$", re.DOTALL)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")
_MC_LETTER_IN_TEXT_RE = re.compile(r"(?<![A-Za-z\\])(\()?([A-E])(?![A-Za-z])(\))?")
# A bare "A" followed by a lower-case word is the English article, not an option.
_ARTICLE_RE = re.compile(r"\s+[a-z]")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[!,;: ]|\\(?:left|right)\b|\\displaystyle\b")
_DEGREES_RE = re.compile(r"\^\s*\{?\\circ\}?")
_ASSIGNMENT_RE = re.compile(r"^[A-Za-z]\s*=\s*(?=\S)")
_LATEX_FRAC_RE = re.compile(r"^(-?)\\frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}$")
_LATEX_SHORT_FRAC_RE = re.compile(r"^(-?)\\frac(\d)(\d)$")
_MC_LETTER_RE = re.compile(r"^\(?([A-Ea-e])\)$|^([A-E])$")


def _boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of each complete `\\boxed{...}`; cut-off ones are skipped."""
    spans = []
    for match in _BOX_RE.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            spans.append((match.start(), i, text[match.end() : i - 1]))
    return spans


def _phrase_tail(text: str, start: int) -> tuple[int, str]:
    """The answer after a phrase like "The answer is": up to the line or sentence end."""
    line_end = text.find("\n", start)
    line = text[start : len(text) if line_end < 0 else line_end]
    sentence_end = _SENTENCE_END_RE.search(line)
    if sentence_end:
        line = line[: sentence_end.start()]
    return start + len(line), line


def _clean(raw: str) -> tuple[str, int]:
    """Drop the decoration around a stated answer (a box, `$`, markdown bold, a final period,
    trailing unit words) and say where in `raw` the answer itself ends."""
    boxed = _boxed_spans(raw)
    answer, end = (boxed[-1][2], boxed[-1][1]) if boxed else (raw, len(raw.rstrip()))
    answer = _strip_decoration(answer)
    units = _LEADING_NUMBER_UNITS_RE.match(answer)
    if units:
        answer = units.group(1)
        if not boxed and answer in raw:
            end = raw.index(answer) + len(answer)
    if _THOUSANDS_RE.match(answer):
        answer = answer.replace(",", "")
    return answer, end


def _strip_decoration(answer: str) -> str:
    """Remove markdown bold, `$`, `\\(...\\)` / `\\[...\\]` and trailing punctuation."""
    answer = answer.replace("**", "").strip().strip("$").strip()
    delimited = _MATH_DELIMITERS_RE.match(answer)
    if delimited:
        answer = delimited.group(1).strip()
    return answer.rstrip(".,;:").strip()


def _phrase_answers(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int, str]]:
    """(start, end, cleaned answer) of every phrase-introduced answer that is not empty."""
    found = []
    for match in pattern.finditer(text):
        _, raw = _phrase_tail(text, match.end())
        cleaned, end = _clean(raw)
        if cleaned:
            found.append((match.start(), match.end() + end, cleaned))
    return found


def final_answer_span(text: str) -> tuple[int, int] | None:
    """Where the last explicit final-answer statement (`\\boxed{}` or "the answer is") lies.

    Rewards use it to ask whether there was reasoning before the answer and how much text
    trailed after it; extraction heuristics such as the last number do not count here.
    """
    spans = [(s, e) for s, e, _ in _boxed_spans(text)]
    spans += [(s, e) for s, e, _ in _phrase_answers(text, _STRICT_PHRASE_RE)]
    return max(spans, key=lambda span: span[1]) if spans else None


def _last_number(text: str) -> str | None:
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def _choice_letters(text: str) -> list[str]:
    """Standalone option letters A-E in `text`, leaving out the article in "A train ..."."""
    letters = []
    for match in _MC_LETTER_IN_TEXT_RE.finditer(text):
        bracketed = match.group(1) or match.group(3)
        if match.group(2) == "A" and not bracketed and _ARTICLE_RE.match(text, match.end()):
            continue
        letters.append(match.group(2))
    return letters


def is_yes_no_question(question: str) -> bool:
    """Whether the question (its last sentence that asks) wants a yes or a no: it opens with an
    auxiliary verb and offers no alternatives ("Is 1001 prime?", not "Is it red or blue?")."""
    asked = [q.strip() for q in _ASKED_RE.findall(question)]
    if not asked or not asked[-1]:
        return False
    last = asked[-1]
    return bool(_POLAR_QUESTION_RE.match(last)) and not re.search(r"\bor\b", last, re.I)


def _polar_answer(text: str, question: str) -> str | None:
    """Yes/No for a yes/no question: a stated yes/no ("The answer is: No"), a reply that opens
    with one, else what the sentence that answers it says. That sentence names the question's
    subject, a verb, then what was asked ("1001 is not a prime number."); the last concluding
    one ("So, ...", "Therefore ...") is taken, else the first. None when no sentence answers."""
    statements = [_clean(c)[0] for *_, c in _boxed_spans(text)]
    statements += [a for *_, a in _phrase_answers(text, _PHRASE_RE)]
    for statement in reversed(statements):
        word = _yes_no(statement) or _yes_no(statement.split(",")[0] + ",")
        if word in ("Yes", "No"):
            return word
    opening = "Yes" if _AFFIRMATIVE_OPENING_RE.match(text) else _yes_no(text)
    if opening in ("Yes", "No"):
        return opening
    asked = _asked_about(question)
    if asked is None:
        return None
    subject, predicate = asked
    opposite = {_OPPOSITES[p] for p in predicate if p in _OPPOSITES}
    answers = []
    for match in _SENTENCE_RE.finditer(text):
        sentence = match.group(0).strip()
        for words, flip in ((predicate, False), (opposite, True)):
            claim = _claim(sentence, subject, words)
            if claim is not None:
                answers.append((bool(_CONCLUSION_RE.match(sentence)), sentence, claim, flip))
                break
    if not answers:
        return None
    concluding = [a for a in answers if a[0]]
    _, sentence, claim, flip = concluding[-1] if concluding else answers[0]
    said = _SAID_YES_NO_RE.search(sentence)  # "So, yes, ..." / "Therefore no, ..."
    if said:
        return _YES_NO[said.group(1).lower()]
    return "No" if bool(_NEGATION_RE.search(claim)) != flip else "Yes"


def _words(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?(?:/\d+)?|[A-Za-z]+(?:'[a-z]+)?", text.lower())


def _stem(word: str) -> str:
    return word if word[0].isdigit() else word[:4]


def _asked_about(question: str) -> tuple[str, set[str]] | None:
    """(subject stem, predicate stems) of a yes/no question: "Is 97 a prime number?" ->
    ("97", {"prim"}); "Can a penguin fly?" -> ("peng", {"fly"})."""
    asked = _ASKED_RE.findall(question)[-1]
    words = [w for w in _words(asked)[1:] if w not in _QUESTION_STOPWORDS]
    if len(words) < 2:
        return None
    return _stem(words[0]), {_stem(w) for w in words[1:]}


def _claim(sentence: str, subject: str, predicate: set[str]) -> str | None:
    """The words of `sentence` that say something of the subject: the subject, a verb within
    three words, a predicate word within four ("1001 is not a prime"); None when there are none,
    or when they are only asked about ("To check if 97 is prime, ...")."""
    words = _words(sentence)
    for i, word in enumerate(words):
        if _stem(word) != subject or {"if", "whether"} & set(words[:i]):
            continue
        verb = any(_POLAR_QUESTION_RE.match(w) or w in _NEGATIONS for w in words[i + 1 : i + 4])
        near = [_stem(w) in predicate for w in words[i + 1 : i + 5]]
        if verb and any(near):
            return " ".join(words[i : i + 2 + near.index(True)])
    return None


def extract_answer(
    text: str, *, multiple_choice: bool = False, question: str | None = None
) -> str | None:
    """The final answer a model gave in `text`, or None when it gave none.

    Tried in order: the last complete `\\boxed{}`/`\\fbox{}`, the last "answer is X" /
    "Answer: X", a GSM8K `#### X`, a reply that opens with yes or no, then the last number.
    A statement that states nothing (a template's "The answer is X", "the final answer", a
    sentence without a number) is passed over for the one before it; one cut off mid-way
    ("The answer is 18 +") with none before it is no answer. Yes/no answers come back
    as "Yes"/"No". With `multiple_choice`, the result is an option letter A-E taken from those
    statements, else the last standalone letter. Given the `question`, a yes/no question
    ("Is 1001 prime?") gets "Yes" or "No" (`_polar_answer`), never a number from the text.
    Text cut off mid-way is fine: an unclosed box or an empty "The answer is" is passed over.
    """
    if question is not None and not multiple_choice and is_yes_no_question(question):
        return _polar_answer(text, question)
    boxed = _boxed_spans(text)
    stated = [_clean(content)[0] for *_, content in boxed]
    stated = [s for s in stated if s]
    marked = True  # a box or `####` marks its content as the answer, whatever it is
    if not stated:
        stated, marked = [a for *_, a in _phrase_answers(text, _PHRASE_RE)], False
    if not stated:
        stated, marked = [a for *_, a in _phrase_answers(text, _GSM8K_RE)], True
    if multiple_choice:
        # The first letter of a stated answer ("C, because A is wrong"), else the last in text.
        in_statement = _choice_letters(stated[-1]) if stated else []
        if in_statement:
            return in_statement[0]
        anywhere = _choice_letters(text)
        return anywhere[-1] if anywhere else None
    for statement in reversed(stated):
        core = _core_of_statement(statement, marked=marked)
        if core is not None:
            return core
    if stated and _INCOMPLETE_RE.search(stated[-1]):
        return None  # cut off while stating it: "The answer is 18 +" is no answer yet
    opening = _yes_no(text)
    if opening is not None:
        return opening
    return _last_number(text)


def _yes_no(answer: str) -> str | None:
    """ "Yes"/"No" (or "True"/"False") when `answer` opens with that word, else None."""
    first = _FIRST_WORD_RE.match(answer)
    return _YES_NO.get(first.group(1).lower()) if first else None


def _core_of_statement(answer: str, *, marked: bool = False) -> str | None:
    """What a stated answer states, or None when it states nothing.

    Small models often state a calculation or a sentence as the answer ("17 * 23 = 391",
    "that the ball costs 5 cents", "No, 1001 = 7 * 11 * 13"): keep a leading yes/no, what
    follows the last `=`, and the last number of prose. After "the answer is", prose without a
    number and words that are only filler ("the final answer", 'X," which is the final
    answer') are no answer; a `marked` one (in a box, after `####`) is kept as written.
    """
    yes_no = _yes_no(answer)
    if yes_no is not None:
        return yes_no
    if "=" in answer:
        tail = answer.rsplit("=", 1)[1].strip()
        if tail:
            units = _LEADING_NUMBER_UNITS_RE.match(tail)  # "5 x 12 = 60 apples"
            answer = units.group(1) if units else tail
    if _INCOMPLETE_RE.search(answer):
        return None  # cut off mid-expression: "18 +"
    if "\\" in answer:
        return answer
    letters = re.findall(r"[A-Za-z]+", answer)
    filler = letters and all(w.lower() in _FILLER_WORDS for w in letters)
    if filler and not marked and not re.search(r"\d", answer):
        return None
    words = answer.split()
    prose = len(words) > 3 or (len(words) > 1 and words[0].isalpha() and len(words[0]) > 1)
    if prose and not marked and any(q in answer for q in '"“”'):
        return None  # quoting a template: 'X," which is the final answer to the problem'
    if prose:
        number = _last_number(answer)
        return answer if number is None and marked else number
    return answer


def normalize_answer(answer: str) -> str:
    """A canonical key for an answer, so trivially different spellings vote together.

    Strips `$`, `\\text{}`, LaTeX spacing, degree signs, percent signs, a leading `x =`,
    thousands commas and redundant decimal zeros ("3.50" -> "3.5", "1,000" -> "1000").
    Mathematically equal forms ("1/2", "0.5") may keep different keys: `answers_equivalent`
    is the judge of equality, this is only the fast path and the label shown to users.
    """
    s = _strip_decoration(answer)
    s = _boxed_spans(s)[-1][2].strip() if _boxed_spans(s) else s
    for _ in range(3):  # nested \text{\textbf{..}}
        s = _TEXT_CMD_RE.sub(r"\1", s)
    s = _SPACING_RE.sub("", s)
    s = _DEGREES_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = " ".join(s.split()).rstrip(".,;:").strip()
    s = _ASSIGNMENT_RE.sub("", s)
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    if _DECIMAL_RE.match(s):
        s = _canonical_decimal(s)
    letter = _MC_LETTER_RE.match(s)
    if letter:
        s = (letter.group(1) or letter.group(2)).upper()
    return _YES_NO.get(s.lower(), s)


def _canonical_decimal(s: str) -> str:
    """Drop signs and zeros that do not change the value, exactly at any length.

    "+003.500" -> "3.5" and "-0.0" -> "0"; `Decimal.normalize` would round long numbers.
    """
    negative = s.startswith("-")
    whole, _, frac = s.lstrip("+-").partition(".")
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    text = f"{whole}.{frac}" if frac else whole
    return "-" + text if negative and text != "0" else text


def _as_fraction(s: str) -> Fraction | None:
    """The exact rational value of a normalised plain number, `a/b` or `\\frac{a}{b}`."""
    frac = _LATEX_FRAC_RE.match(s) or _LATEX_SHORT_FRAC_RE.match(s)
    try:
        if frac:
            sign = -1 if frac.group(1) else 1
            return sign * Fraction(int(frac.group(2)), int(frac.group(3)))
        if re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:\s*/\s*[+-]?\d+)?", s):
            return Fraction(s.replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return None
    return None


def answers_equivalent(a: str, b: str) -> bool:
    """Whether two answers are mathematically the same ("0.5" ~ "1/2" ~ "\\frac{1}{2}").

    The policy, the same for votes and for grading since both call this: an answer is a
    value. A fragment cut off where more must follow ("2x +") equals nothing. An arithmetic
    expression of plain numbers that was not worked out ("17 - 14", "6 * 11") is not its
    value: it equals only another such expression of the same value, never "3" or "66".
    Exact forms stay values: "1/2", "2^{10}", "5!", "2\\sqrt{3}". Yes/no compare by word.

    Symmetric by construction: math-verify's `verify(gold, pred)` is not, so both orders are
    tried. Never raises; anything math-verify cannot parse is simply not equivalent.
    """
    na, nb = normalize_answer(a), normalize_answer(b)
    if is_incomplete(na) or is_incomplete(nb):
        return False
    if na == nb:
        return True
    return _equivalent_normalized(*sorted((na, nb)))


def is_incomplete(answer: str) -> bool:
    """Whether an answer stops where more must follow: an operator, `=`, an open bracket."""
    return bool(_INCOMPLETE_RE.search(answer))


def is_unevaluated(answer: str) -> bool:
    """Whether an answer is an arithmetic expression of plain numbers ("17 - 14")."""
    return bool(_UNEVALUATED_RE.match(normalize_answer(answer)))


@lru_cache(maxsize=4096)
def _equivalent_normalized(a: str, b: str) -> bool:
    if not a or not b:
        return False
    if bool(_UNEVALUATED_RE.match(a)) != bool(_UNEVALUATED_RE.match(b)):
        return False  # "6 * 11" is not 66: see answers_equivalent
    if a in _YES_NO.values() or b in _YES_NO.values():
        return False  # equal words were caught before
    fa, fb = _as_fraction(a), _as_fraction(b)
    if fa is not None and fb is not None:
        return fa == fb
    if _MC_LETTER_RE.match(a) or _MC_LETTER_RE.match(b):
        return False
    if max(len(a), len(b)) > MATH_VERIFY_MAX_CHARS:
        return False
    return math_verify_child.equivalent(a, b)


@dataclass
class AnswerGroup:
    """Branches whose answers are equivalent; `answer` is the first one seen, normalised."""

    answer: str
    members: list[int] = field(default_factory=list)


def group_answers(answers: Sequence[str | None]) -> list[AnswerGroup]:
    """Group equivalent answers, in order of first appearance; None or blank answers are skipped.

    Each answer is compared with every group's representative, so a vote over n branches with
    g distinct answers costs O(n*g) equivalence checks, most of them cached.
    """
    groups: list[AnswerGroup] = []
    by_key: dict[str, AnswerGroup] = {}
    for index, raw in enumerate(answers):
        if raw is None or not raw.strip():
            continue
        key = normalize_answer(raw)
        if not key:
            continue
        group = by_key.get(key)
        if group is None:
            group = next((g for g in groups if answers_equivalent(g.answer, key)), None)
            if group is None:
                group = AnswerGroup(answer=key)
                groups.append(group)
            by_key[key] = group
        group.members.append(index)
    return groups
