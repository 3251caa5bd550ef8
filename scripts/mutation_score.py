"""The mutation score of the last ``mutmut run`` (``make mutate``), from mutmut's files in mutants/.

    python scripts/mutation_score.py                  # per-module counts, the score, the survivors
    python scripts/mutation_score.py --fail-under 95  # exit status 1 if the score is below 95 %
    python scripts/mutation_score.py --list-survivors # only the names of the non-equivalent survivors

mutmut keeps a verdict until the mutated function changes, so a survivor stays one after a test
is added for it; ``make mutate`` passes ``--list-survivors`` to ``mutmut run`` to retest them.

mutmut 3 records one exit code per mutant in ``mutants/<file>.py.meta``. A mutant is *killed*
when a test failed (or timed out, or crashed) with it in place, and *survived* when the tests
passed. A mutant no test reaches ("no tests") or one whose run was interrupted ("suspicious")
counts as survived: no test noticed it. Mutants not checked yet (a run limited to some mutants,
or stopped early) count for nothing and are reported.

Some survivors change nothing that can be observed (an *equivalent* mutant, e.g. ``x[:, :]``
for ``x[:]``, or a message nobody reads): they are listed in ``EQUIVALENT_GROUPS`` below, each with the
reason, and left out of the score:

    score = killed / (killed + survived - equivalent)

Mutant names carry a number per function, so editing a function renumbers its mutants: the
script reports entries of ``EQUIVALENT_GROUPS`` that no longer name a survivor, so the list can be
checked again (``mutmut show NAME`` prints a mutant's diff).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"

# mutmut 3's exit codes (mutmut/stats.py), sorted into what the score needs.
KILLED_CODES = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
                255: "timeout", -11: "segfault", -9: "segfault", 37: "caught by type check"}
SURVIVED_CODES = {0: "survived", 5: "no tests", 33: "no tests", 35: "suspicious"}
NOT_COUNTED_CODES = {None: "not checked", 2: "interrupted", 34: "skipped"}

# Survivors no test can kill, grouped by why: the mutant computes what the original does (at most a float32
# rounding differs), or its change runs at import time, before mutmut switches a mutant on.
EQUIVALENT_GROUPS: list[tuple[str, list[str]]] = [
    ('float32 gradient built in float64, then cast back to float32 exactly by backward', [
        'tinygrad_mb.tensor.x_spread__mutmut_3',
        'tinygrad_mb.tensor.x_spread__mutmut_5',
    ]),
    ('sums over no axes: a copy of the same values', [
        'tinygrad_mb.tensor.x_unbroadcast__mutmut_7',
        'tinygrad_mb.tensor.x_unbroadcast__mutmut_22',
    ]),
    ('index gradient built in float64, cast back by backward (only float32 rounding of a repeated index '
     'could differ)', [
        'tinygrad_mb.tensor.xǁTensorǁ__getitem____mutmut_7',
        'tinygrad_mb.tensor.xǁTensorǁ__getitem____mutmut_9',
    ]),
    ('2-D matmul takes the general path: the same products (a speed branch)', [
        'tinygrad_mb.tensor.xǁTensorǁ__matmul____mutmut_15',
    ]),
    ('gradient of an operand that does not require grad is computed, then dropped by backward (speed only)', [
        'tinygrad_mb.tensor.xǁTensorǁ__matmul____mutmut_17',
        'tinygrad_mb.tensor.xǁTensorǁ__matmul____mutmut_23',
        'tinygrad_mb.tensor.xǁTensorǁ__matmul____mutmut_53',
        'tinygrad_mb.tensor.xǁTensorǁ__matmul____mutmut_70',
    ]),
    ('a matrix gets a leading axis of 1 that unbroadcast and reshape remove: same values', [
        'tinygrad_mb.tensor.xǁTensorǁ__matmul____mutmut_30',
    ]),
    ('tie mask in float64, gradient cast back to float32 by backward (float32 rounding only)', [
        'tinygrad_mb.tensor.xǁTensorǁmax__mutmut_25',
    ]),
    ('x > 0 instead of x >= 0: at x = 0 both branches give exactly 1/2', [
        'tinygrad_mb.tensor.xǁTensorǁsigmoid__mutmut_13',
    ]),
    ("numpy reads any negative size as 'infer it': reshape(-2) == reshape(-1)", [
        'tinygrad_mb.checks.x__int_list__mutmut_16',
    ]),
    ('numpy float scalars skip the fast path: as_float_array returns the same 0-d float array', [
        'tinygrad_mb.checks.x_as_result__mutmut_1',
        'tinygrad_mb.checks.x_as_result__mutmut_2',
        'tinygrad_mb.checks.x_as_result__mutmut_4',
    ]),
    ('float("INF") is float("inf")', [
        'tinygrad_mb.checks.x_check_base__mutmut_10',
    ]),
    ('b.ndim > 2: for a 2-D right operand axis 0 is axis -2', [
        'tinygrad_mb.checks.x_check_matmul__mutmut_17',
    ]),
    ('"XXfiubXX" still contains every dtype kind f, i, u, b (X is no kind)', [
        'tinygrad_mb.checks.x_cast_gradient__mutmut_2',
    ]),
    ('reshape(None) keeps the shape; bool() of one element is the same', [
        'tinygrad_mb.checks.x_truth__mutmut_6',
    ]),
    ('a kind string padded with "XX" still contains every real dtype kind (X is no kind)', [
        'tinygrad_mb.checks.x__plain_part__mutmut_24',
        'tinygrad_mb.checks.x_accumulable__mutmut_28',
        'tinygrad_mb.checks.x_has_integer_array__mutmut_7',
    ]),
    ('np.asarray of an array is the array itself', [
        'tinygrad_mb.checks.x_accumulable__mutmut_2',
        'tinygrad_mb.checks.x_accumulable__mutmut_4',
    ]),
    ('the common case takes the general path, which accepts a same-shape array .grad too (a speed branch)', [
        'tinygrad_mb.checks.x_accumulable__mutmut_11',
        'tinygrad_mb.checks.x_plain_index__mutmut_1',
    ]),
    ("another kind that is not real ('o', 'XXOXX', an object array's 'O'): the same error", [
        'tinygrad_mb.checks.x_accumulable__mutmut_19',
        'tinygrad_mb.checks.x_accumulable__mutmut_21',
        'tinygrad_mb.checks.x_accumulable__mutmut_22',
        'tinygrad_mb.checks.x_accumulable__mutmut_25',
        'tinygrad_mb.checks.x_accumulable__mutmut_26',
    ]),
    ('"" is no float dtype either, and np.dtype(None) is float64: the same check', [
        'tinygrad_mb.checks.x_check_float_dtype__mutmut_3',
        'tinygrad_mb.checks.x_check_float_dtype__mutmut_7',
    ]),
    ('np.ma.is_masked of data that is not a masked array is False: the same test', [
        'tinygrad_mb.checks.x__float_array__mutmut_5',
    ]),
    ('astype(None) is astype(float64)', [
        'tinygrad_mb.checks.x__float_array__mutmut_19',
        'tinygrad_mb.checks.x__float_array__mutmut_23',
    ]),
    ('"XXbiuXX" still contains b, i and u', [
        'tinygrad_mb.checks.x__float_array__mutmut_21',
    ]),
    ('every caller that shares memory passes own_copy itself; elsewhere an extra copy of input data changes no value', [
        'tinygrad_mb.checks.x_as_float_array__mutmut_1',
    ]),
    ('keepdims is only checked, and the default is a bool either way', [
        'tinygrad_mb.checks.x_normalize_axis__mutmut_1',
    ]),
    ('the bool fast path is skipped: check_flag accepts True and False alike', [
        'tinygrad_mb.checks.x_normalize_axis__mutmut_3',
        'tinygrad_mb.checks.x_normalize_axis__mutmut_5',
        'tinygrad_mb.checks.x_normalize_axis__mutmut_7',
        'tinygrad_mb.checks.x_requires_grad_flag__mutmut_1',
        'tinygrad_mb.checks.x_requires_grad_flag__mutmut_3',
        'tinygrad_mb.checks.x_requires_grad_flag__mutmut_5',
        'tinygrad_mb.checks.x_requires_grad_flag__mutmut_7',
    ]),
    ('the Python-int fast path is skipped: is_int accepts ints alike', [
        'tinygrad_mb.checks.x_normalize_axis__mutmut_29',
    ]),
    ('the fast path is skipped: the general check returns the same array (a speed branch)', [
        'tinygrad_mb.tensor.xǁTensorǁbackward__mutmut_16',
        'tinygrad_mb.tensor.xǁTensorǁbackward__mutmut_19',
        'tinygrad_mb.tensor.xǁTensorǁbackward__mutmut_34',
        'tinygrad_mb.tensor.xǁTensorǁbackward__mutmut_35',
        'tinygrad_mb.tensor.xǁTensorǁbackward__mutmut_50',
        'tinygrad_mb.tensor.xǁTensorǁrecord__mutmut_4',
        'tinygrad_mb.tensor.xǁTensorǁrecord__mutmut_7',
        'tinygrad_mb.tensor.xǁTensorǁrecord__mutmut_9',
    ]),
    ('g * 1.0 is a new array of the same values (and the caller copies it anyway)', [
        'tinygrad_mb.minibatch.x__collect__mutmut_10',
    ]),
    ('stacklevel counts frames and mutmut\'s trampoline adds one: under mutmut no stacklevel points at the '
     'caller (tests/test_mutants.py checks it outside mutmut)', [
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_69',
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_70',
    ]),
    ('requires_grad defaults to False', [
        'tinygrad_mb.tensor.xǁTensorǁdetach__mutmut_5',
    ]),
    ('the one-row fast path is skipped: the general einsum gives the same products (a speed branch)', [
        'tinygrad_mb.minibatch.x_per_sample_gradients__mutmut_33',
    ]),
    ('v divided by ±1 instead of multiplied: the same v', [
        'tinygrad_mb.gradcheck.x__compare__mutmut_6',
    ]),
    ('another fixed random v of mixed signs and unequal sizes: only the numbers in a failure message '
     'change', [
        'tinygrad_mb.gradcheck.x__compare__mutmut_15',
        'tinygrad_mb.gradcheck.x__compare__mutmut_26',
        'tinygrad_mb.gradcheck.x__compare__mutmut_29',
        'tinygrad_mb.gradcheck.x__compare__mutmut_30',
    ]),
    ('< instead of <= against a tolerance: differs only when the difference equals the tolerance exactly', [
        'tinygrad_mb.gradcheck.x__compare__mutmut_44',
        'tinygrad_mb.gradcheck.x__compare__mutmut_92',
    ]),
    ('a result that does not require grad: its one-node order is [out], whose None .grad is put back', [
        'tinygrad_mb.gradcheck.x__compare__mutmut_54',
    ]),
    ('writes the saved values back even when they are unchanged (or NaN): a no-op', [
        'tinygrad_mb.gradcheck.x_gradcheck__mutmut_95',
        'tinygrad_mb.gradcheck.x_gradcheck__mutmut_96',
        'tinygrad_mb.gradcheck.x_gradcheck__mutmut_97',
        'tinygrad_mb.gradcheck.x_gradcheck__mutmut_100',
        'tinygrad_mb.gradcheck.x_gradcheck__mutmut_101',
    ]),
    ('"XXiuXX" still contains the integer kinds i and u', [
        'tinygrad_mb.optim.x__check_entry__mutmut_8',
    ]),
    ("a step count saved without dtype=int64 is int64 anyway (numpy 2's default int)", [
        'tinygrad_mb.optim.x__copy_entry__mutmut_2',
        'tinygrad_mb.optim.x__copy_entry__mutmut_5',
        'tinygrad_mb.optim.x__copy_entry__mutmut_7',
        'tinygrad_mb.optim.x__copy_entry__mutmut_9',
        'tinygrad_mb.optim.x__copy_entry__mutmut_10',
        'tinygrad_mb.optim.xǁOptimizerǁstate_dict__mutmut_23',
    ]),
    ('load_state_dict re-checks hyperparameters check_state_dict has just accepted: its where/name never '
     'reach a message', [
        'tinygrad_mb.optim.xǁOptimizerǁload_state_dict__mutmut_2',
        'tinygrad_mb.optim.xǁOptimizerǁload_state_dict__mutmut_3',
        'tinygrad_mb.optim.xǁOptimizerǁload_state_dict__mutmut_10',
        'tinygrad_mb.optim.xǁOptimizerǁload_state_dict__mutmut_11',
    ]),
    ('adds 0 * p (weight decay or prior precision 0): the same step', [
        'tinygrad_mb.optim.xǁSGDǁupdate__mutmut_3',
        'tinygrad_mb.optim.xǁSGLDǁupdate__mutmut_10',
    ]),
    ('noise not rounded to float32 before scaling: += still stores float32 (last-bit rounding only)', [
        'tinygrad_mb.optim.xǁSGLDǁupdate__mutmut_24',
    ]),
    ('astype copies or not: the noise is a fresh array either way', [
        'tinygrad_mb.optim.xǁSGLDǁupdate__mutmut_25',
        'tinygrad_mb.optim.xǁSGLDǁupdate__mutmut_27',
        'tinygrad_mb.optim.xǁSGLDǁupdate__mutmut_28',
    ]),
    ('the missing names are all parameter names, str already: key=str changes no order', [
        'tinygrad_mb.nn.xǁModuleǁload_state_dict__mutmut_10',
        'tinygrad_mb.nn.xǁModuleǁload_state_dict__mutmut_12',
    ]),
    ("astype's default is copy=True", [
        'tinygrad_mb.nn.xǁModuleǁload_state_dict__mutmut_46',
    ]),
    ('runs when nn is imported, before mutmut switches a mutant on: no test run can see it', [
        'tinygrad_mb.nn.x_per_sample_loss__mutmut_1',
    ]),
    ('np.random.default_rng(generator) returns that generator', [
        'tinygrad_mb.nn.x__generator__mutmut_1',
    ]),
    ("numpy reads any negative size as 'infer it': reshape(-2, n) == reshape(-1, n)", [
        'tinygrad_mb.nn.x_linear__mutmut_40',
        'tinygrad_mb.nn.x_linear__mutmut_48',
    ]),
    ('gradient of an input that does not require grad is computed, then dropped by backward (speed only)', [
        'tinygrad_mb.nn.x_linear__mutmut_53',
        'tinygrad_mb.nn.x_linear__mutmut_60',
        'tinygrad_mb.nn.x_linear__mutmut_67',
    ]),
    ('a kind string padded with "XX" still contains every real dtype kind (X is no kind)', [
        'tinygrad_mb.nn.x_class_labels__mutmut_9',
        'tinygrad_mb.nn.x_class_labels__mutmut_52',
    ]),
    ('astype copies or not: the labels are only read', [
        'tinygrad_mb.nn.x_class_labels__mutmut_63',
        'tinygrad_mb.nn.x_class_labels__mutmut_65',
        'tinygrad_mb.nn.x_class_labels__mutmut_66',
    ]),
    ("y's mean in float64 for a float32 model: the residual's float32 rounding only", [
        'tinygrad_mb.minibatch.x_error_first_backward__mutmut_22',
        'tinygrad_mb.minibatch.x_error_first_backward__mutmut_24',
    ]),
    ('astype copies or not: the per-sample array is fresh from einsum either way', [
        'tinygrad_mb.minibatch.x__add_per_sample__mutmut_5',
        'tinygrad_mb.minibatch.x__add_per_sample__mutmut_7',
        'tinygrad_mb.minibatch.x__add_per_sample__mutmut_8',
    ]),
    ("numpy reads any negative size as 'infer it': reshape(B, -2, n) == reshape(B, -1, n)", [
        'tinygrad_mb.minibatch.x__layer_rows__mutmut_36',
        'tinygrad_mb.minibatch.x__layer_rows__mutmut_45',
    ]),
    ('einsum subscripts in upper case: the same contraction', [
        'tinygrad_mb.minibatch.x__norms_of_rows__mutmut_21',
        'tinygrad_mb.minibatch.x__norms_of_rows__mutmut_31',
        'tinygrad_mb.minibatch.x__norms_of_rows__mutmut_40',
        'tinygrad_mb.minibatch.x__norms_of_rows__mutmut_51',
        'tinygrad_mb.minibatch.x_clipped_mean__mutmut_76',
        'tinygrad_mb.minibatch.x_per_sample_gradients__mutmut_42',
        'tinygrad_mb.minibatch.x_per_sample_gradients__mutmut_55',
    ]),
    ("np.finfo(None) is float64's", [
        'tinygrad_mb.minibatch.x_clipped_mean__mutmut_61',
    ]),
    ('on_success=None is falsy like False', [
        'tinygrad_mb.minibatch.x_accumulated__mutmut_29',
        'tinygrad_mb.minibatch.x_batched_mean__mutmut_19',
        'tinygrad_mb.minibatch.x_clipped_mean__mutmut_24',
        'tinygrad_mb.minibatch.x_error_first__mutmut_23',
        'tinygrad_mb.minibatch.x_naive_accumulated__mutmut_33',
        'tinygrad_mb.minibatch.x_per_sample_average__mutmut_22',
        'tinygrad_mb.minibatch.x_per_sample_grad_norms__mutmut_13',
        'tinygrad_mb.minibatch.x_per_sample_gradients__mutmut_14',
        'tinygrad_mb.minibatch.x_sum_estimate__mutmut_24',
    ]),
    ('the default op is never used: every caller passes its own name', [
        'tinygrad_mb.minibatch.x__per_sample_layers__mutmut_1',
        'tinygrad_mb.minibatch.x__per_sample_layers__mutmut_2',
    ]),
    ("the seed is built in float64, then backward casts it to the root's dtype: the same values", [
        'tinygrad_mb.minibatch.x_error_first_backward__mutmut_104',
        'tinygrad_mb.minibatch.x_error_first_backward__mutmut_107',
    ]),
    # functions changed in the second round's reviews
    ('None for False where only the truth value is used; extra letters that no dtype kind or '
     'lower-case first letter can match', [
        'tinygrad_mb.checks.x_any_requires_grad__mutmut_1',
        'tinygrad_mb.checks.x_with_article__mutmut_7',
        'tinygrad_mb.checks.x_with_article__mutmut_15',
        'tinygrad_mb.optim.x__check_step__mutmut_32',
    ]),
    ('numpy takes -2 as the one unknown dimension like -1; einsum takes upper-case subscripts', [
        'tinygrad_mb.minibatch.x__layer_rows__mutmut_47',
        'tinygrad_mb.minibatch.x_clipped_mean__mutmut_79',
    ]),
    ("the noise scale's rounding threshold: < for <=, 4/B, 5B for 4B·eps·Σ‖g_i‖² (the rounding measured is "
     "at most 0.01 eps·Σ‖g_i‖² at B = 8, a few eps at B = 2: every choice separates it from a signal)", [
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_103',
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_106',
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_107',
    ]),
    ("stacklevel: mutmut's trampoline adds a frame, so the test of the warning's file is skipped under mutmut", [
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_93',
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_98',
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_122',
        'tinygrad_mb.minibatch.x_gradient_noise_scale__mutmut_123',
    ]),
    # data.py and vae.py (tests/test_mutants_data_vae.py explains each)
    ('the same arc traversed backwards (t symmetric about π/2), then randomly permuted: the same data set', [
        'tinygrad_mb.data.x_make_moons__mutmut_73',
    ]),
    ('minus a centred normal draw instead of plus: the same distribution of noise', [
        'tinygrad_mb.data.x_make_moons__mutmut_81',
        'tinygrad_mb.data.x_make_spirals__mutmut_67',
        'tinygrad_mb.data.x_make_regression__mutmut_90',
    ]),
    ('extra labels past position n, which y[order] never reads', [
        'tinygrad_mb.data.x_make_moons__mutmut_101',
    ]),
    ("an argument removed that equals its default (tanh, float64, grads_put_back's falsy on_success)", [
        'tinygrad_mb.vae.xǁVAEǁ__init____mutmut_37',
        'tinygrad_mb.vae.xǁVAEǁ__init____mutmut_48',
        'tinygrad_mb.vae.x_aevb_step__mutmut_43',
        'tinygrad_mb.vae.x_binarised_digits__mutmut_2',
    ]),
    # checkpoint.py and train.py (tests/test_mutants_checkpoint_train.py explains each)
    ('numpy reads order codes and Python codec names without regard to case; order=None is C order', [
        'tinygrad_mb.checkpoint.x__pack__mutmut_7',
        'tinygrad_mb.checkpoint.x__pack__mutmut_22',
        'tinygrad_mb.checkpoint.x__pack__mutmut_77',
        'tinygrad_mb.checkpoint.x_checksum__mutmut_18',
        'tinygrad_mb.checkpoint.x_checksum__mutmut_22',
        'tinygrad_mb.checkpoint.x_checksum__mutmut_26',
        'tinygrad_mb.checkpoint.x__read_header__mutmut_19',
        'tinygrad_mb.checkpoint.x__is_checkpoint_file__mutmut_23',
    ]),
    ("a header member claiming exactly the file's size cannot fit beside the zip's own headers", [
        'tinygrad_mb.checkpoint.x__is_checkpoint_file__mutmut_8',
    ]),
    ("allow_pickle=None, or numpy's default: both False", [
        'tinygrad_mb.checkpoint.x__is_checkpoint_file__mutmut_15',
        'tinygrad_mb.checkpoint.x__is_checkpoint_file__mutmut_17',
    ]),
    ('a one-letter dtype.kind is never "X"', [
        'tinygrad_mb.train.x_targets_are_class_ids__mutmut_13',
    ]),
    ("Trainer.load: every optimizer here has an lr; UserWarning is warn's default category; stacklevel "
     "(mutmut's trampoline adds a frame)", [
        'tinygrad_mb.train.xǁTrainerǁload__mutmut_14',
        'tinygrad_mb.train.xǁTrainerǁload__mutmut_34',
        'tinygrad_mb.train.xǁTrainerǁload__mutmut_38',
        'tinygrad_mb.train.xǁTrainerǁload__mutmut_41',
        'tinygrad_mb.train.xǁTrainerǁload__mutmut_42',
        'tinygrad_mb.train.xǁTrainerǁload__mutmut_43',
    ]),
    ("the data_parallel branch runs only under MPI, whose tests mutation testing leaves out", [
        *[f'tinygrad_mb.train.xǁTrainerǁgradient__mutmut_{k}' for k in range(2, 10)],
    ]),
    ('a batch mean added onto per-sample terms, then averaged: the same mean', [
        'tinygrad_mb.vae.xǁVAEǁnegative_elbo__mutmut_30',
        'tinygrad_mb.vae.xǁVAEǁnegative_elbo__mutmut_39',
    ]),
]
EQUIVALENT: dict[str, str] = {name: why for why, names in EQUIVALENT_GROUPS for name in names}


def status_of(code: int | None) -> tuple[str, str]:
    """('killed' | 'survived' | 'not counted', mutmut's word for the code)."""
    if code in KILLED_CODES:
        return "killed", KILLED_CODES[code]
    if code in SURVIVED_CODES:
        return "survived", SURVIVED_CODES[code]
    if code in NOT_COUNTED_CODES:
        return "not counted", NOT_COUNTED_CODES[code]
    return "survived", f"suspicious (exit code {code})"


def load_results(mutants: Path) -> dict[str, tuple[str, int | None]]:
    """Every mutant's (source file, exit code), by name, from the ``*.py.meta`` files under ``mutants``."""
    results: dict[str, tuple[str, int | None]] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        source = meta.relative_to(mutants).as_posix().removesuffix(".meta")
        for name, code in json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"].items():
            results[name] = (source, code)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fail-under", type=float, default=None, metavar="PERCENT",
                        help="exit with status 1 if the score is below PERCENT")
    parser.add_argument("--list-survivors", action="store_true",
                        help="print only the names of the surviving mutants not listed as equivalent")
    parser.add_argument("--mutants", type=Path, default=MUTANTS, help="mutmut's folder (default: mutants/)")
    args = parser.parse_args(argv)

    results = load_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}: run `make mutate` (or `mutmut run`) first")
        return 1

    per_module: dict[str, Counter[str]] = {}
    survivors: list[tuple[str, str]] = []
    equivalent: list[str] = []
    for name, (source, code) in sorted(results.items()):
        kind, word = status_of(code)
        counts = per_module.setdefault(source, Counter())
        counts[kind] += 1
        if kind == "survived":
            if name in EQUIVALENT:
                equivalent.append(name)
                counts["equivalent"] += 1
            else:
                survivors.append((name, word))

    if args.list_survivors:
        print("\n".join(name for name, _ in survivors))
        return 0

    print(f"{'file':28} {'mutants':>8} {'killed':>7} {'survived':>9} {'equivalent':>11} {'not checked':>12}")
    total: Counter[str] = Counter()
    for module, counts in sorted(per_module.items()):
        total.update(counts)
        n = sum(counts[k] for k in ("killed", "survived", "not counted"))
        print(f"{module:28} {n:8} {counts['killed']:7} {counts['survived']:9} {counts['equivalent']:11} "
              f"{counts['not counted']:12}")
    n = sum(total[k] for k in ("killed", "survived", "not counted"))
    print(f"{'all':28} {n:8} {total['killed']:7} {total['survived']:9} {total['equivalent']:11} "
          f"{total['not counted']:12}")

    if survivors:
        print(f"\n{len(survivors)} surviving mutants (see one with `.venv/bin/mutmut show NAME`):")
        for name, word in survivors:
            print(f"    {name}" + ("" if word == "survived" else f"  ({word})"))
    stale = sorted(set(EQUIVALENT) - set(equivalent))
    if stale:
        print(f"\n{len(stale)} entries of EQUIVALENT_GROUPS name no surviving mutant (renumbered, killed or not run):")
        for name in stale:
            print(f"    {name}")
    if total["not counted"]:
        print(f"\n{total['not counted']} mutants were not checked (a partial run): they are left out of the score")

    scored = total["killed"] + total["survived"] - total["equivalent"]
    score = 100.0 * total["killed"] / scored if scored else 0.0
    print(f"\nkilled {total['killed']} of {scored} non-equivalent mutants ({score:.1f}%); "
          f"{total['equivalent']} equivalent mutants left out")
    if args.fail_under is not None and score < args.fail_under:
        print(f"the score {score:.1f}% is below the target of {args.fail_under:g}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
