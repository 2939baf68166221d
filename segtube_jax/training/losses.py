"""Losses and metrics of the proposal and classification networks (Sec. 2.1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def masked_cross_entropy(
  logits: jax.Array, labels: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean softmax cross-entropy over windows whose label is >= 0 (-1 marks ignored windows).

  Args:
    logits: [..., C] float.
    labels: [...] int, -1 for windows that carry no loss.

  Returns:
    (loss, sums) where sums holds the summed loss, correct count and labelled count, so that
    metrics can be averaged exactly across devices and batches.
  """
  valid = labels >= 0
  safe = jnp.where(valid, labels, 0)
  per_window = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe)
  weight = valid.astype(jnp.float32)
  count = weight.sum()
  loss_sum = (per_window * weight).sum()
  correct = ((jnp.argmax(logits, -1) == safe) & valid).sum().astype(jnp.float32)
  loss = loss_sum / jnp.maximum(count, 1.0)
  return loss, {"loss_sum": loss_sum, "correct": correct, "count": count}


def summarize(sums: dict[str, jax.Array], prefix: str) -> dict[str, jax.Array]:
  """Turns summed counts into ``{prefix}_loss`` and ``{prefix}_accuracy``."""
  n = jnp.maximum(sums["count"], 1.0)
  return {
    f"{prefix}_loss": sums["loss_sum"] / n,
    f"{prefix}_accuracy": sums["correct"] / n,
    f"{prefix}_windows": sums["count"],
  }
