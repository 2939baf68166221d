"""segtube_jax.training."""
