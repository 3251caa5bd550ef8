"""The backward rules that pictures print inside fused nodes.

Most operations are small enough that their name says what backward does (``add`` sends
``g`` to both inputs, ``mul`` sends ``g * b`` and ``g * a``). A *fused* operation does several
steps in one node, and that can hide what the project teaches: ``nn.linear`` is ``h @ W + b``
in one node, so no separate ``add`` node shows that the bias's gradient is the sum of the
batch's rows. So the node writes its rules in its box, and the picture says again where
the batch is summed.

To have your own operation explain itself in pictures, add a line here: the op name you
pass to ``Tensor.record``, then the lines to print (plain text; the picture escapes it).
Sample i's row is written with a subscript: hᵢ is row i of the input h, gᵢ row i of the
gradient G arriving from the next node.

The compact view (``view="compact"``) has room for one or two short lines per box; it prints
``SHORT_FORMULAS`` instead, and for an op that has no short entry, its full lines. An op whose
rules depend on how many inputs it has gets an entry "op/n" for n inputs, looked up first
(``linear`` without a bias has two inputs, h and W, and no db).
"""

from __future__ import annotations

BACKWARD_FORMULAS: dict[str, tuple[str, ...]] = {
    # nn.linear: y = h W + b, one row per sample. The two sums over the rows are where the
    # batch is summed; a mean loss has already put its 1/B inside every gᵢ.
    "linear": (
        "y = h W + b",
        "dh = G Wᵀ",
        "dW = hᵀG = Σᵢ outer(hᵢ, gᵢ)",
        "db = Σᵢ gᵢ  (the batch sum)",
    ),
    "linear/2": (  # nn.Linear(..., bias=False): y = h W
        "y = h W",
        "dh = G Wᵀ",
        "dW = hᵀG = Σᵢ outer(hᵢ, gᵢ)  (the batch sum)",
    ),
    # nn.cross_entropy: one loss per sample, from its own logits zᵢ and label yᵢ; the
    # reduction over the batch (the 1/B of a mean) is the separate node after it.
    "cross_entropy": (
        "ℓᵢ = −log softmax(zᵢ)[yᵢ]",
        "dzᵢ = softmax(zᵢ) − onehot(yᵢ)",
    ),
}


# The same rules, shortened for the compact view. The linear node keeps its batch sums even
# here: a fused node that hid dW = hᵀG and db = Σᵢ gᵢ would hide what the project teaches.
SHORT_FORMULAS: dict[str, tuple[str, ...]] = {
    "linear": ("hW + b", "dW = hᵀG, db = Σᵢ gᵢ"),
    "linear/2": ("hW", "dW = hᵀG"),
    "cross_entropy": ("ℓᵢ = −log softmax(zᵢ)[yᵢ]",),
}


def backward_formulas(op: str, inputs: int | None = None) -> tuple[str, ...]:
    """The lines a node of operation ``op`` with ``inputs`` inputs prints about its rules (none for most ops)."""
    return BACKWARD_FORMULAS.get(f"{op}/{inputs}", BACKWARD_FORMULAS.get(op, ()))


def short_formulas(op: str, inputs: int | None = None) -> tuple[str, ...]:
    """The lines a node of operation ``op`` with ``inputs`` inputs prints in the compact view."""
    return SHORT_FORMULAS.get(f"{op}/{inputs}", SHORT_FORMULAS.get(op, backward_formulas(op, inputs)))
