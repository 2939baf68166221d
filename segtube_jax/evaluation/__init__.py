"""segtube_jax.evaluation."""
