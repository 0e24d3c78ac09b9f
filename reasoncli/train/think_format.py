"""`reason train grpo --format think`: DeepSeek-R1-Zero's recipe at small scale.

The policy is prompted with R1-Zero's instruction (reason inside `<think>...</think>`, then
answer) through a ChatML template whose assistant turn opens `<think>`; the format reward
(`reasoncli.rewards.think_format_reward`) checks the tags, the accuracy reward is unchanged.
The exported GGUF carries this template, so `reason` sees the tags in it and treats the model as
a thinking model (budget forcing, reasoning fields in `reason serve`) with no models.yaml field.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasoncli.models.schema import ModelSpec
from reasoncli.reasoning import THINK_TAGS

__all__ = ["FORMATS", "THINK_CHAT_TEMPLATE", "THINK_SYSTEM", "THINK_TAGS", "TrainFormat"]

# R1-Zero's template (arXiv 2501.12948, Table 1), with our answer line so extraction reads it.
THINK_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The Assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process is enclosed within <think> "
    "</think> tags, and the answer follows it as a final line 'The answer is X.', i.e., "
    "<think> reasoning process here </think> The answer is X."
)

# ChatML (SmolLM2's own format) with the thought opened in the assistant turn. The R1-Zero
# instruction always leads the system turn, before any system message of the caller's (`reason`
# sends its own), so training and every later prompt agree. Earlier assistant turns are rendered
# without their trace, as R1's and Qwen3's templates do.
THINK_CHAT_TEMPLATE = (
    "{{ '<|im_start|>system\\n" + THINK_SYSTEM.replace("'", "\\'") + "' }}"
    "{% for message in messages if message['role'] == 'system' %}"
    "{{ '\\n\\n' + message['content'] }}"
    "{% endfor %}"
    "{{ '<|im_end|>\\n' }}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% set content = message['content'] %}"
    "{% if message['role'] == 'assistant' and '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] | trim %}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TrainFormat:
    """What `--format` changes in a run: the template prompts are made with, and the entry."""

    name: str
    chat_template: str | None = None  # None: the model's own
    think_tags: tuple[str, str] | None = None

    def training_spec(self, spec: ModelSpec) -> ModelSpec:
        """The entry training prompts, rewards and the export check are made with."""
        if self.chat_template is None:
            return spec
        return spec.model_copy(
            update={
                "mode": "chat",
                "chat_template": self.chat_template,
                "think_tags": self.think_tags,
            }
        )

    def registered_spec(self, spec: ModelSpec) -> ModelSpec:
        """The entry the export is registered from: with our template in the GGUF, the entry
        names no template or tags of its own, so the file's own template (and tags) rule."""
        if self.chat_template is None:
            return spec
        return spec.model_copy(update={"chat_template": None, "think_tags": None})


FORMATS: dict[str, TrainFormat] = {
    "answer": TrainFormat("answer"),
    "think": TrainFormat("think", THINK_CHAT_TEMPLATE, THINK_TAGS),
}
