"""Plausible wrong answers to the exercises, which the checkers must reject.

A checker is useful only if it catches the mistakes learners actually make, and says what to
try instead. Each mistake below is a function in ``wrong/my_*.py``, named after the mistake,
that replaces one function of the reference solution. The project's test suite
(``tests/test_exercise_checkers.py``) runs each task's checkers against each of its mistakes,
with ``TINYGRAD_MB_EXERCISES=wrong:<mistake>``, and requires at least one checker to fail with
a message matching the mistake's ``advice``: the words a learner needs to fix it.

To see the checkers' verdict on one mistake yourself, from the repository root:

    TINYGRAD_MB_EXERCISES=wrong:mean_of_chunk_means pytest tutorials/exercises -m ex_weighted_accumulation

This module only describes the mistakes (plain data, so that the test suite can read it
without importing anything); ``answer`` builds a module with one of them in place.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Mistake:
    """A wrong answer: ``module.function`` replaced by ``wrong/<module>.py``'s function of the mistake's name.

    ``advice`` is a regular expression that the failure message of at least one of the task's
    checkers must match.
    """

    task: str
    module: str
    function: str
    advice: str


MISTAKES: dict[str, Mistake] = {
    # ---- exercise 1: leaky_relu
    "leaky_relu_backward_of_relu": Mistake("ex_leaky_relu", "my_ops", "leaky_relu", r"times slope"),
    "leaky_relu_composed_of_existing_ops": Mistake("ex_leaky_relu", "my_ops", "leaky_relu", r"Tensor\.record"),
    "leaky_relu_backward_changes_g_in_place": Mistake("ex_leaky_relu", "my_ops", "leaky_relu",
                                                      r"changes its g in place"),
    # ---- exercise 2: logsumexp
    "logsumexp_without_the_max_shift": Mistake("ex_logsumexp", "my_ops", "logsumexp", r"subtract m = the max"),
    "logsumexp_backward_without_the_shift": Mistake("ex_logsumexp", "my_ops", "logsumexp", r"shifted exponentials"),
    "logsumexp_backward_scales_its_softmax_in_place": Mistake("ex_logsumexp", "my_ops", "logsumexp",
                                                              r"second backward pass"),
    "logsumexp_backward_ignores_upstream": Mistake("ex_logsumexp", "my_ops", "logsumexp", r"upstream gradient g"),
    "logsumexp_backward_without_the_reduced_axis": Mistake("ex_logsumexp", "my_ops", "logsumexp",
                                                           r"np\.expand_dims\(g, axis\)"),
    # ---- exercise 3: maximum
    "maximum_ties_go_to_a": Mistake("ex_maximum", "my_ops", "maximum", r"tie.*half"),
    "maximum_without_unbroadcast": Mistake("ex_maximum", "my_ops", "maximum", r"unbroadcast"),
    "maximum_backward_changes_g_in_place": Mistake("ex_maximum", "my_ops", "maximum", r"changes its g in place"),
    # ---- exercise 4: clipped average
    "clips_the_average": Mistake("ex_clipped_average", "my_strategy", "clipped_per_sample_average",
                                 r"clip each sample's gradient, then average"),
    "clips_each_parameter_separately": Mistake("ex_clipped_average", "my_strategy", "clipped_per_sample_average",
                                               r"over all parameters together"),
    "divides_by_a_zero_norm": Mistake("ex_clipped_average", "my_strategy", "clipped_per_sample_average",
                                      r"norm of 0|zero gradient"),
    "accepts_any_max_norm": Mistake("ex_clipped_average", "my_strategy", "clipped_per_sample_average",
                                    r"raise ValueError"),
    "calls_the_library_clipped_mean": Mistake("ex_clipped_average", "my_strategy", "clipped_per_sample_average",
                                              r"library's own answer"),
    # ---- exercise 5: the property test
    "batches_of_at_most_five": Mistake("ex_property", "my_property", "check_strategy_returns_batch_gradient",
                                       r"batch size above 5 that 5 does not divide"),
    "the_same_input_for_every_sample": Mistake("ex_property", "my_property", "check_strategy_returns_batch_gradient",
                                               r"different inputs"),
    "one_fixed_batch": Mistake("ex_property", "my_property", "check_strategy_returns_batch_gradient",
                               r"let hypothesis draw"),
    "compares_shapes_only": Mistake("ex_property", "my_property", "check_strategy_returns_batch_gradient",
                                    r"compares the values"),
    "a_loose_tolerance": Mistake("ex_property", "my_property", "check_strategy_returns_batch_gradient",
                                 r"tolerance for rounding only"),
    "even_batch_sizes_only": Mistake("ex_property", "my_property", "check_strategy_returns_batch_gradient",
                                     r"odd batch sizes"),
    # ---- exercise 6: weighted accumulation
    "mean_of_chunk_means": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated", r"2024.*\|c\|/B"),
    "unweighted_sum_of_chunk_means": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated",
                                             r"without weights.*\|c\|/B"),
    "sum_of_sample_losses": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated", r"divide by B"),
    "one_batched_pass": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated",
                                r"micro-batches of at most micro_batch"),
    "keeps_stale_gradients": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated",
                                     r"model\.zero_grad\(\)"),
    "calls_the_library": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated", r"write the loop yourself"),
    "imports_the_library_answer_by_name": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated",
                                                  r"write the loop yourself"),
    "shuffles_the_callers_batch_in_place": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated",
                                                   r"changed the caller's X in place"),
    "accepts_a_micro_batch_of_zero": Mistake("ex_weighted_accumulation", "my_minibatch", "accumulated",
                                             r"Check micro_batch"),
    # ---- exercise 7: the (N/M) sum estimate
    "batch_mean_without_n": Mistake("ex_sum_estimate", "my_minibatch", "sum_estimate", r"multiply by N"),
    "batch_sum_without_n_over_m": Mistake("ex_sum_estimate", "my_minibatch", "sum_estimate", r"scale it by N/M"),
    "n_over_m_times_the_batch_mean": Mistake("ex_sum_estimate", "my_minibatch", "sum_estimate",
                                             r"multiply the batch-mean gradient by N"),
    "accepts_a_too_small_dataset_size": Mistake("ex_sum_estimate", "my_minibatch", "sum_estimate",
                                                r"check dataset_size"),
    # ---- exercise 8: token-weighted accumulation
    "own_token_count_per_micro_batch": Mistake("ex_token_weighted_accumulation", "my_minibatch",
                                               "token_weighted_accumulated", r"2024.*real tokens of the whole batch"),
    "sequence_weighted_token_means": Mistake("ex_token_weighted_accumulation", "my_minibatch",
                                             "token_weighted_accumulated", r"share of real tokens, n_c/N"),
    "padding_counted_in_the_total": Mistake("ex_token_weighted_accumulation", "my_minibatch",
                                            "token_weighted_accumulated", r"divide by the number of real tokens"),
    "mask_forgotten": Mistake("ex_token_weighted_accumulation", "my_minibatch", "token_weighted_accumulated",
                              r"multiply the per-token losses by the mask"),
    "whole_batch_at_once": Mistake("ex_token_weighted_accumulation", "my_minibatch", "token_weighted_accumulated",
                                   r"micro-batches of at most micro_batch"),
    "normalises_the_callers_mask_in_place": Mistake("ex_token_weighted_accumulation", "my_minibatch",
                                                    "token_weighted_accumulated",
                                                    r"changed the caller's mask in place"),
}


def answer(module: str, mistake: str) -> ModuleType:
    """The reference solution of ``module``, with the function that ``mistake`` gets wrong replaced."""
    if mistake not in MISTAKES:
        raise KeyError(f"wrong: no mistake named {mistake!r}; the mistakes are {sorted(MISTAKES)}")
    reference = importlib.import_module(f"solutions.{module}")
    spec = MISTAKES[mistake]
    if spec.module != module:
        return reference
    wrong = ModuleType(f"wrong.{mistake}.{module}", reference.__doc__)
    wrong.__dict__.update({k: v for k, v in vars(reference).items() if not k.startswith("__")})
    setattr(wrong, spec.function, getattr(importlib.import_module(f"wrong.{module}"), mistake))
    return wrong
